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
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * The scheduler's cost per step in steady-state decode: N running sequences, each step schedules
 * all of them (one token each, a new block every 16 steps) and applies the sampled tokens.
 * No model runs: this is the bookkeeping vLLM's scheduler must keep under the GPU step time.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g", "--add-modules", "jdk.incubator.vector"})
public class SchedulerBenchmark {
    @Param({"1000"})
    int running;

    private BatchScheduler scheduler;
    private StepResult result;

    @Setup(Level.Iteration)
    public void fill() {
        // Enough blocks that a 1 s iteration (tens of thousands of steps) never preempts.
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(4_000_000, 16, true));
        scheduler = new BatchScheduler(new SchedulerConfig(running, 8192, 1 << 20, SchedulingPolicy.FCFS, true), kv,
                Set.of(2));
        SamplingParams params = SamplingParams.builder().temperature(0).maxTokens(1 << 19).ignoreEos(true).build();
        List<SampledToken> sampled = new java.util.ArrayList<>();
        SampledToken token = new SampledToken(7, Float.NaN, List.of());
        for (int i = 0; i < running; i++) {
            int[] prompt = new int[32];
            java.util.Arrays.fill(prompt, i % 500);
            prompt[0] = i;
            scheduler.submit(Request.of("r" + i, prompt, params));
            sampled.add(token);
        }
        // In steady-state decode every running sequence samples, in plan order.
        result = new StepResult(0, java.util.stream.IntStream.range(0, running).toArray(), sampled);
        while (scheduler.numWaiting() > 0) {
            step(); // admit everyone (prefill) before measuring decode steps
        }
    }

    @Benchmark
    public int step() {
        StepPlan plan = scheduler.schedule();
        return scheduler.update(plan, result).size();
    }
}
