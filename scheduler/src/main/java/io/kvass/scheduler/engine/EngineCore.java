package io.kvass.scheduler.engine;

import io.kvass.scheduler.core.BatchScheduler;
import io.kvass.scheduler.core.FailedRequest;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SequenceState;
import io.kvass.scheduler.core.SequenceUpdates;
import io.kvass.scheduler.output.OutputProcessor;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.ArrayList;
import java.util.List;

/**
 * One replica's engine logic without actors: {@code plan()} → (a worker executes) →
 * {@code complete(plan, result)}. The {@code Engine} actor and the offline {@link LocalEngine} both
 * drive this, so the step reads the same everywhere.
 */
public final class EngineCore {
    private final BatchScheduler scheduler;
    private final OutputProcessor outputs;
    private final List<FailedRequest> failures = new ArrayList<>();

    public EngineCore(BatchScheduler scheduler, OutputProcessor outputs) {
        this.scheduler = scheduler;
        this.outputs = outputs;
    }

    /** Queues a request; throws {@link IllegalArgumentException} naming why one can never run. */
    public void add(Request request) {
        scheduler.submit(request);
        for (int i = 0; i < request.params().n(); i++) {
            outputs.track(SequenceState.seqIdOf(request.requestId(), request.params().n(), i), request.promptTokenIds(),
                    request.params().forChild(i), request.resumeTokens());
        }
    }

    public void abort(String requestId, int n) {
        scheduler.abort(requestId);
        for (int i = 0; i < n; i++) {
            outputs.forget(SequenceState.seqIdOf(requestId, n, i));
        }
    }

    public boolean hasWork() {
        return scheduler.hasWorkOrNews();
    }

    public StepPlan plan() {
        StepPlan plan = scheduler.schedule();
        for (FailedRequest f : scheduler.drainFailed()) {
            for (int i = 0; i < f.request().params().n(); i++) {
                outputs.forget(SequenceState.seqIdOf(f.requestId(), f.request().params().n(), i));
            }
            failures.add(f);
        }
        return plan;
    }

    /** True when a plan carries nothing for the worker: every waiting sequence waits for its adapter. */
    public static boolean isIdle(StepPlan plan) {
        return plan.numSequences() == 0 && plan.dropped().isEmpty() && plan.copySrc().length == 0;
    }

    /** Requests that failed after being accepted (since the last call): tell their clients. */
    public List<FailedRequest> drainFailures() {
        List<FailedRequest> out = List.copyOf(failures);
        failures.clear();
        return out;
    }

    public List<RequestOutput> complete(StepPlan plan, StepResult result) {
        return outputs(update(plan, result));
    }

    /** The scheduler's half of {@link #complete}: the step's tokens applied; must come before the next {@link #plan}. */
    public SequenceUpdates update(StepPlan plan, StepResult result) {
        return scheduler.update(plan, result);
    }

    /**
     * The outputs' half of {@link #complete}: detokenization, stop strings, usage. It may run after the next
     * {@link #plan}, while that step is on the worker: a stop string then ends its sequence during the step,
     * as an abort would, and the step's token for it is dropped.
     */
    public List<RequestOutput> outputs(SequenceUpdates updates) {
        return outputs.process(updates, scheduler::finishSequence);
    }

    public BatchScheduler scheduler() {
        return scheduler;
    }
}
