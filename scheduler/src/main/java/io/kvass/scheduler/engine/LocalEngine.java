package io.kvass.scheduler.engine;

import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.scheduler.core.AdapterGate;
import io.kvass.scheduler.core.BatchScheduler;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.output.OutputProcessor;
import io.kvass.worker.backend.Backend;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Set;
import java.util.TreeSet;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.step.ModelRunner;
import io.kvass.worker.step.StepPlan;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The engine loop on the caller's thread, with the model runner in-process: offline generation
 * ({@code kvass generate}) and tests. Same core, same scheduler as the served path.
 */
public final class LocalEngine {
    private final EngineCore core;
    private final ModelRunner runner;
    private final Semaphore adapterChanged = new Semaphore(0);

    public LocalEngine(EngineCore core, ModelRunner runner) {
        this.core = core;
        this.runner = runner;
        core.scheduler().adapterGate().addListener(adapterChanged::release);
    }

    /** An engine over {@code backend}, its KV pool managed with the backend's block count and size. */
    public static LocalEngine of(Backend backend, Tokenizer tokenizer, SchedulerConfig config) {
        return of(backend, tokenizer, config, AdapterGate.FIXED_SLOTS);
    }

    /** As {@link #of(Backend, Tokenizer, SchedulerConfig)}, with LoRA adapters admitted through {@code adapters}. */
    public static LocalEngine of(Backend backend, Tokenizer tokenizer, SchedulerConfig config, AdapterGate adapters) {
        KvCacheManager kv = new KvCacheManager(
                new KvCacheConfig(backend.numKvBlocks(), backend.blockSize(), config.enablePrefixCaching()));
        Set<Integer> eos = new TreeSet<>(backend.config().eosTokenIds());
        eos.addAll(tokenizer.eosTokenIds());
        ModelRunner runner = new ModelRunner(backend, Sampler.cpu(), eos.stream().mapToInt(Integer::intValue).toArray(),
                java.util.Optional.of(GrammarCompiler.of(tokenizer, backend.config().vocabSize())));
        return new LocalEngine(new EngineCore(new BatchScheduler(config, kv, eos, adapters), new OutputProcessor(tokenizer)),
                runner);
    }

    public EngineCore core() {
        return core;
    }

    public ModelRunner runner() {
        return runner;
    }

    /** One step; returns what it produced. With nothing runnable but adapters loading, waits a little for them instead. */
    public List<RequestOutput> step() {
        StepPlan plan = core.plan();
        if (EngineCore.isIdle(plan)) {
            awaitAdapterChange();
            return List.of();
        }
        return core.complete(plan, runner.execute(plan));
    }

    private void awaitAdapterChange() {
        try {
            adapterChanged.tryAcquire(50, TimeUnit.MILLISECONDS);
            adapterChanged.drainPermits();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a LoRA adapter to load", e);
        }
    }

    /** Runs until every queued request finished, handing each output to {@code sink}. */
    public void runToCompletion(Consumer<RequestOutput> sink) {
        while (core.hasWork()) {
            step().forEach(sink);
        }
    }

    /** Submits all requests, runs them together, and returns every output in order. */
    public List<RequestOutput> generate(List<Request> requests) {
        requests.forEach(core::add);
        List<RequestOutput> all = new ArrayList<>();
        runToCompletion(all::add);
        return all;
    }
}
