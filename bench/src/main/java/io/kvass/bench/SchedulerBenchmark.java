package io.kvass.bench;

import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.scheduler.core.BatchScheduler;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The scheduler's cost per step in steady-state decode under constant load, as a busy server sees it.
 * No model runs: this is the bookkeeping vLLM's scheduler must keep under the GPU step time.
 *
 * <p>One op is one {@code schedule()} + {@code update()} with {@code running} sequences in the plan, every
 * one of them sampling a token: each sequence appends one token per step, takes a new KV block every 16
 * steps and registers each block it fills in the prefix cache (SHA-256 chained hash). A request ends after
 * {@value #OUTPUT_TOKENS} output tokens and a new one (a {@value #PROMPT_TOKENS}-token prompt, never seen
 * before) takes its place, so about {@code running / OUTPUT_TOKENS} sequences per step are prefilled instead
 * of decoded, and as many are freed. The first requests' lengths are staggered so that these replacements
 * are spread evenly over the steps from the start.
 *
 * <p>The KV pool and the scheduler are built once per trial: the pool holds every running sequence at its
 * longest, so nothing is preempted, and its freed blocks stay in the prefix cache until evicted (LRU), so
 * the cache is as full as on a long-running server.
 *
 * <p>Block hashes are SHA-256 (the only algorithm {@code BlockHasher} has). {@link #schedule} measures
 * {@code schedule()} alone in the same steady state: each plan is updated after the measured call, outside its
 * time. {@link #step}, the whole step, is the figure the goal is about.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g", "--add-modules", "jdk.incubator.vector"})
public class SchedulerBenchmark {
    private static final int BLOCK_SIZE = 16;
    private static final int PROMPT_TOKENS = 32;
    private static final int OUTPUT_TOKENS = 1024;

    @Param({"1000"})
    int running;

    private BatchScheduler scheduler;
    private StepResult result;
    private SamplingParams params;
    private long nextRequest;

    @Setup(Level.Trial)
    public void fill() {
        int maxBlocksPerSequence = (PROMPT_TOKENS + OUTPUT_TOKENS) / BLOCK_SIZE;
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(running * maxBlocksPerSequence, BLOCK_SIZE, true));
        // NOTE: a budget that takes every prompt at once, so the setup's one prefill step has no chunk that
        // samples nothing; a steady-state step uses about running + PROMPT_TOKENS of it.
        int budget = Math.max(8192, running * PROMPT_TOKENS);
        scheduler = new BatchScheduler(new SchedulerConfig(running, budget, 2 * (PROMPT_TOKENS + OUTPUT_TOKENS),
                SchedulingPolicy.FCFS, true), kv, Set.of(2));
        params = SamplingParams.builder().temperature(0).maxTokens(OUTPUT_TOKENS).ignoreEos(true).build();
        for (int i = 0; i < running; i++) {
            int outputTokens = 1 + i * (OUTPUT_TOKENS - 1) / running; // staggered: the first ones end at once
            submit(SamplingParams.builder().temperature(0).maxTokens(outputTokens).ignoreEos(true).build());
        }
        // Every sequence in the plan samples (decodes, and prefills of a whole prompt), in plan order.
        result = new StepResult(0, IntStream.range(0, running).toArray(),
                Collections.nCopies(running, new SampledToken(7, Float.NaN, List.of())));
        step(); // admits everyone (prefill) before measuring
    }

    /** One whole step: {@code schedule()}, then {@code update()} with every sequence's token. */
    @Benchmark
    public int step() {
        return update(plan());
    }

    /** {@code schedule()} alone; the plan is updated after the call, outside the measured time. */
    @Benchmark
    public StepPlan schedule(PlanToUpdate next) {
        next.scheduledBy = this;
        next.plan = plan();
        return next.plan;
    }

    /** The plan {@link #schedule} made, updated after each call (JMH times each call on its own). */
    @State(Scope.Thread)
    public static class PlanToUpdate {
        // NOTE: set by the call, not injected: JMH gives a tear-down that asks for the benchmark another instance
        SchedulerBenchmark scheduledBy;
        StepPlan plan;

        @TearDown(Level.Invocation)
        public void update() {
            scheduledBy.update(plan);
        }
    }

    private StepPlan plan() {
        StepPlan plan = scheduler.schedule();
        if (plan.numSequences() != running) {
            throw new IllegalStateException("the plan has " + plan.numSequences() + " sequences, not " + running);
        }
        return plan;
    }

    private int update(StepPlan plan) {
        int numUpdates = scheduler.update(plan, result).size();
        while (scheduler.numRunning() + scheduler.numWaiting() < running) {
            submit(params); // constant load: a finished request is replaced at once
        }
        return numUpdates;
    }

    /** A prompt no other request had, so it is prefilled in full and its blocks are hashed anew. */
    private void submit(SamplingParams requestParams) {
        long id = nextRequest++;
        int[] prompt = new int[PROMPT_TOKENS];
        Arrays.fill(prompt, (int) (id % 500));
        prompt[0] = (int) id;
        scheduler.submit(Request.of("r" + id, prompt, requestParams));
    }
}
