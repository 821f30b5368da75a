package io.kvass.scheduler.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import org.junit.jupiter.api.Test;

/** Which blocks the scheduler's steps leave in the prefix cache, whether their sequences go on or finish. */
class BatchSchedulerPrefixCacheTest {
    private static final int BLOCK_SIZE = 4;
    private static final int SAMPLED = 42;

    private final KvCacheManager kv = new KvCacheManager(new KvCacheConfig(64, BLOCK_SIZE, true));
    private final BatchScheduler scheduler = new BatchScheduler(
            new SchedulerConfig(8, 256, 128, SchedulingPolicy.FCFS, true), kv, Set.of(2));

    /** One step in which every sequence of the plan samples {@link #SAMPLED}. */
    private void step() {
        StepPlan plan = scheduler.schedule();
        int n = plan.numSequences();
        scheduler.update(plan, new StepResult(plan.stepId(), IntStream.range(0, n).toArray(),
                Collections.nCopies(n, new SampledToken(SAMPLED, Float.NaN, List.of()))));
    }

    /** Tokens of {@code tokens} a new request would find cached. */
    private int cachedTokens(int... tokens) {
        return kv.findCachedPrefix(new RequestKey("probe", CacheScope.BASE), tokens).numTokens();
    }

    private void submit(String id, int maxTokens, int... prompt) {
        scheduler.submit(Request.of(id, prompt, SamplingParams.builder().temperature(0).maxTokens(maxTokens)
                .ignoreEos(true).build()));
    }

    @Test
    void aBlockFilledByRunningSequencesIsCachedByTheEndOfTheStep() {
        submit("a", 10, 1, 2, 3);
        submit("b", 10, 5, 6, 7);
        step(); // prefill: 3 tokens computed each, one sampled
        assertEquals(0, cachedTokens(1, 2, 3, SAMPLED, 9));
        step(); // the sampled token computed: each fills its first block
        assertEquals(4, cachedTokens(1, 2, 3, SAMPLED, 9));
        assertEquals(4, cachedTokens(5, 6, 7, SAMPLED, 9));
        assertEquals(2, scheduler.numRunning());
    }

    @Test
    void aSequenceThatFinishesInTheStepThatFillsABlockLeavesThatBlockCached() {
        submit("a", 2, 1, 2, 3); // ends at 5 tokens: its second step computes the 4th and samples the 5th
        submit("b", 10, 5, 6, 7);
        step();
        step();
        assertTrue(!kv.hasRequest("a"), "a finished and freed its blocks");
        assertEquals(4, cachedTokens(1, 2, 3, SAMPLED, 9));
        assertEquals(4, cachedTokens(5, 6, 7, SAMPLED, 9));
    }
}
