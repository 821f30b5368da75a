package io.kvass.scheduler.engine;

import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.scheduler.core.BatchScheduler;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.output.OutputProcessor;
import io.kvass.worker.backend.Backend;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Set;
import java.util.TreeSet;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.step.ModelRunner;
import io.kvass.worker.step.StepPlan;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The engine loop on the caller's thread, with the model runner in-process: offline generation
 * ({@code kvass generate}) and tests. Same core, same scheduler as the served path.
 */
public final class LocalEngine {
    private final EngineCore core;
    private final ModelRunner runner;

    public LocalEngine(EngineCore core, ModelRunner runner) {
        this.core = core;
        this.runner = runner;
    }

    /** An engine over {@code backend}, its KV pool managed with the backend's block count and size. */
    public static LocalEngine of(Backend backend, Tokenizer tokenizer, SchedulerConfig config) {
        KvCacheManager kv = new KvCacheManager(
                new KvCacheConfig(backend.numKvBlocks(), backend.blockSize(), config.enablePrefixCaching()));
        Set<Integer> eos = new TreeSet<>(backend.config().eosTokenIds());
        eos.addAll(tokenizer.eosTokenIds());
        ModelRunner runner = new ModelRunner(backend, Sampler.cpu(), eos.stream().mapToInt(Integer::intValue).toArray());
        return new LocalEngine(new EngineCore(new BatchScheduler(config, kv, eos), new OutputProcessor(tokenizer)), runner);
    }

    public EngineCore core() {
        return core;
    }

    public ModelRunner runner() {
        return runner;
    }

    /** One step; returns what it produced. */
    public List<RequestOutput> step() {
        StepPlan plan = core.plan();
        return core.complete(plan, runner.execute(plan));
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
