package io.kvass.scheduler.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.ContinuingSequence;
import io.kvass.worker.step.NewSequence;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The scheduler alone, with a fake worker that tracks what it was told: under random arrivals,
 * aborts and a tight KV pool, every plan respects the limits, the worker's view stays consistent,
 * every request ends with exactly max_tokens tokens (or aborted), and the pool drains to full.
 */
class BatchSchedulerPropertyTest {

    /**
     * Mirrors the worker's per-sequence state: how many tokens it holds and has computed, and its block
     * table as the plans' deltas build it, which must match the KV manager's and cover every token computed.
     */
    private static final class FakeWorker {
        final Map<String, int[]> seqs = new HashMap<>(); // id -> {numTokens, numComputed}
        final Map<String, int[]> tables = new HashMap<>();
        final KvCacheManager kv;

        FakeWorker(KvCacheManager kv) {
            this.kv = kv;
        }

        StepResult execute(StepPlan plan, Random random) {
            plan.dropped().forEach(seqs::remove);
            plan.dropped().forEach(tables::remove);
            List<Integer> at = new ArrayList<>();
            List<SampledToken> sampled = new ArrayList<>();
            int i = 0;
            for (NewSequence s : plan.newSequences()) {
                assertTrue(!seqs.containsKey(s.seqId()), "new sequence the worker already holds: " + s.seqId());
                seqs.put(s.seqId(), new int[] {s.tokenIds().length, s.numComputedTokens()});
                tables.put(s.seqId(), s.blockTable());
                checkTable(s.seqId(), s.numComputedTokens() + s.numScheduledTokens());
                step(s.seqId(), s.numScheduledTokens(), i++, at, sampled, random);
            }
            for (ContinuingSequence c : plan.continuing()) {
                assertTrue(seqs.containsKey(c.seqId()), "continuing sequence the worker does not hold: " + c.seqId());
                int[] table = Arrays.copyOf(tables.get(c.seqId()), c.firstChangedBlock() + c.changedBlocks().length);
                System.arraycopy(c.changedBlocks(), 0, table, c.firstChangedBlock(), c.changedBlocks().length);
                tables.put(c.seqId(), table);
                checkTable(c.seqId(), seqs.get(c.seqId())[1] + c.numScheduledTokens());
                step(c.seqId(), c.numScheduledTokens(), i++, at, sampled, random);
            }
            return new StepResult(plan.stepId(), at.stream().mapToInt(Integer::intValue).toArray(), sampled);
        }

        private void checkTable(String id, int numTokens) {
            int[] table = tables.get(id);
            assertArrayEquals(kv.blockTable(id), table, "the worker's block table of " + id);
            assertTrue(table.length * kv.blockSize() >= numTokens, id + ": " + numTokens + " tokens in " + table.length + " blocks");
        }

        private void step(String id, int n, int planIndex, List<Integer> at, List<SampledToken> sampled, Random random) {
            int[] s = seqs.get(id);
            assertTrue(n >= 1 && s[1] + n <= s[0], "schedules " + n + " tokens with " + (s[0] - s[1]) + " pending");
            s[1] += n;
            if (s[1] == s[0]) {
                at.add(planIndex);
                sampled.add(new SampledToken(3 + random.nextInt(100), Float.NaN, List.of()));
                s[0]++;
            }
        }
    }

    @Test
    void randomWorkloadsKeepEveryInvariant() {
        for (long seed = 0; seed < 40; seed++) {
            run(seed);
        }
    }

    private static void run(long seed) {
        Random random = new Random(seed);
        int blocks = 12 + random.nextInt(30);
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(blocks, 4, random.nextBoolean()));
        SchedulerConfig config = new SchedulerConfig(1 + random.nextInt(8), 4 + random.nextInt(40), 64,
                random.nextBoolean() ? SchedulingPolicy.FCFS : SchedulingPolicy.PRIORITY, random.nextBoolean());
        BatchScheduler scheduler = new BatchScheduler(config, kv, Set.of(2));
        FakeWorker worker = new FakeWorker(kv);
        Map<String, Integer> maxTokens = new HashMap<>();
        Map<String, Integer> produced = new HashMap<>();
        Set<String> finished = new HashSet<>();
        Set<String> aborted = new HashSet<>();
        List<String> live = new ArrayList<>();
        int submitted = 0;
        for (int step = 0; step < 400 && (submitted < 30 || scheduler.hasWorkOrNews()); step++) {
            if (submitted < 30 && random.nextInt(3) == 0) {
                String id = "r" + submitted++;
                int[] prompt = random.ints(1 + random.nextInt(20), 3, 40).toArray(); // shared small vocab: prefix hits
                int max = 1 + random.nextInt(16);
                scheduler.submit(new Request(id, prompt, SamplingParams.builder().temperature(0).maxTokens(max)
                        .ignoreEos(true).build(), io.kvass.kvpaging.CacheScope.BASE, 0, random.nextInt(3), step));
                maxTokens.put(id, max);
                live.add(id);
            }
            if (!live.isEmpty() && random.nextInt(25) == 0) {
                String id = live.remove(random.nextInt(live.size()));
                scheduler.abort(id);
                aborted.add(id);
            }
            if (!scheduler.hasWorkOrNews()) {
                continue;
            }
            StepPlan plan = scheduler.schedule();
            assertTrue(plan.numScheduledTokens() <= config.maxNumBatchedTokens(), "token budget");
            assertTrue(plan.numSequences() <= config.maxNumSeqs(), "max_num_seqs");
            assertTrue(scheduler.numRunning() <= config.maxNumSeqs(), "running limit");
            SequenceUpdates updates = scheduler.update(plan, worker.execute(plan, random));
            for (int i = 0; i < updates.size(); i++) {
                if (!updates.applied(i)) {
                    continue;
                }
                String id = updates.requestId(i);
                produced.merge(id, 1, Integer::sum);
                if (updates.finish(i).isPresent()) {
                    assertEquals(FinishReason.LENGTH, updates.finish(i).get().reason());
                    assertTrue(finished.add(id), "finished twice: " + id);
                    live.remove(id);
                }
            }
        }
        assertTrue(!scheduler.hasUnfinished(), "seed " + seed + " did not drain");
        worker.execute(scheduler.schedule(), random); // deliver the last drops
        assertTrue(worker.seqs.isEmpty(), "seed " + seed + ": the worker still holds " + worker.seqs.keySet());
        for (String id : maxTokens.keySet()) {
            if (!aborted.contains(id)) {
                assertEquals(maxTokens.get(id), produced.get(id), "seed " + seed + " request " + id);
                assertTrue(finished.contains(id));
            }
        }
        assertEquals(kv.numTotalBlocks(), kv.numFreeBlocks(), "seed " + seed + ": pool back to full");
    }
}
