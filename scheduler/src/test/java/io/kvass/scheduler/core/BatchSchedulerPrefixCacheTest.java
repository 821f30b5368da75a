package io.kvass.scheduler.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.kvpaging.RequestKey;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Which blocks the scheduler's steps leave in the prefix cache, whether their sequences go on or finish; with a
 * block size that is a power of two and one that is not (the scheduler finds filled blocks either way).
 */
class BatchSchedulerPrefixCacheTest {
    private static final int SAMPLED = 42;

    private KvCacheManager kv;
    private BatchScheduler scheduler;

    private void start(int blockSize) {
        kv = new KvCacheManager(new KvCacheConfig(64, blockSize, true));
        scheduler = new BatchScheduler(new SchedulerConfig(8, 256, 128, SchedulingPolicy.FCFS, true), kv, Set.of(2));
    }

    /** One step in which every sequence of the plan samples {@link #SAMPLED}. */
    private void step() {
        StepPlan plan = scheduler.schedule();
        int n = plan.numSequences();
        scheduler.update(plan, new StepResult(plan.stepId(), IntStream.range(0, n).toArray(),
                Collections.nCopies(n, new SampledToken(SAMPLED, Float.NaN, List.of()))));
    }

    /** How many leading tokens of (prompt, SAMPLED, 9) a new request would find cached. */
    private int cachedTokens(int[] prompt) {
        int[] tokens = IntStream.concat(IntStream.of(prompt), IntStream.of(SAMPLED, 9)).toArray();
        return kv.findCachedPrefix(new RequestKey("probe", CacheScope.BASE), tokens).numTokens();
    }

    /** A prompt one token short of a block: its first sampled token completes the block. */
    private static int[] promptOneShortOfABlock(int first, int blockSize) {
        return IntStream.range(first, first + blockSize - 1).toArray();
    }

    private void submit(String id, int maxTokens, int[] prompt) {
        scheduler.submit(Request.of(id, prompt, SamplingParams.builder().temperature(0).maxTokens(maxTokens)
                .ignoreEos(true).build()));
    }

    @ParameterizedTest(name = "block size {0}")
    @ValueSource(ints = {4, 3})
    void aBlockFilledByRunningSequencesIsCachedByTheEndOfTheStep(int blockSize) {
        start(blockSize);
        int[] a = promptOneShortOfABlock(100, blockSize);
        int[] b = promptOneShortOfABlock(200, blockSize);
        submit("a", 10, a);
        submit("b", 10, b);
        step(); // prefill: the prompts computed, a token sampled each
        assertEquals(0, cachedTokens(a));
        step(); // the sampled tokens computed: each fills its first block
        assertEquals(blockSize, cachedTokens(a));
        assertEquals(blockSize, cachedTokens(b));
        for (int s = 1; s < blockSize; s++) {
            step();
            assertEquals(blockSize, cachedTokens(a), "nothing more until the next block is full");
        }
        assertEquals(2, scheduler.numRunning());
    }

    @ParameterizedTest(name = "block size {0}")
    @ValueSource(ints = {4, 3})
    void aSequenceThatFinishesInTheStepThatFillsABlockLeavesThatBlockCached(int blockSize) {
        start(blockSize);
        int[] a = promptOneShortOfABlock(100, blockSize);
        int[] b = promptOneShortOfABlock(200, blockSize);
        submit("a", 2, a); // its second step computes its first sampled token and samples its last
        submit("b", 10, b);
        step();
        step();
        assertFalse(kv.hasRequest("a"), "a finished and freed its blocks");
        assertEquals(blockSize, cachedTokens(a));
        assertEquals(blockSize, cachedTokens(b));
    }
}
