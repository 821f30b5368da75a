package io.kvass.scheduler.engine;

import io.kvass.worker.step.ModelRunner;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Where a replica's steps run. The engine never blocks on one: it gets a future and carries on
 * receiving requests. Locally the runner has its own thread; remote workers answer over the cluster.
 */
public interface StepExecutor extends AutoCloseable {

    /** How long closing waits for a step in flight, so no two engines ever drive one backend at once. */
    long STEP_DRAIN_SECONDS = 30;

    CompletionStage<StepResult> execute(StepPlan plan);

    /** Forgets every sequence (after a failed step the engine recomputes them from their tokens); never blocks. */
    CompletionStage<Void> reset();

    @Override
    void close();

    /**
     * The model runner on a dedicated thread of its own (never a dispatcher thread). Closing it stops
     * the thread once the step in flight (if any) is done; the backend belongs to its replica and
     * stays open, so a restarted engine can use it again.
     */
    static StepExecutor local(ModelRunner runner) {
        ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "kvass-step");
            t.setDaemon(true);
            return t;
        });
        return new StepExecutor() {
            @Override
            public CompletionStage<StepResult> execute(StepPlan plan) {
                return CompletableFuture.supplyAsync(() -> runner.execute(plan), thread);
            }

            @Override
            public CompletionStage<Void> reset() {
                return CompletableFuture.runAsync(runner::reset, thread);
            }

            @Override
            public void close() {
                thread.shutdown();
                try {
                    if (!thread.awaitTermination(STEP_DRAIN_SECONDS, TimeUnit.SECONDS)) {
                        thread.shutdownNow();
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
    }
}
