package io.kvass.scheduler.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.NewSequence;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.testing.ReferenceCase;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Requests through the engine (scheduler + runner + CPU backend) reproduce transformers' greedy ids. */
class ContinuousBatchingTest {
    private static final List<ReferenceCase.Prompt> prompts = LlamaGqaFixture.PROMPTS;

    private static LocalEngine engine(int numBlocks, SchedulerConfig config) {
        return LlamaGqaFixture.engine(numBlocks, config);
    }

    private static SchedulerConfig config(int maxNumSeqs, int budget) {
        return new SchedulerConfig(maxNumSeqs, budget, 256, SchedulingPolicy.FCFS, true);
    }

    /** Token ids of each request, in order, collected from its outputs. */
    private static Map<String, List<Integer>> collect(List<RequestOutput> outputs) {
        Map<String, List<Integer>> ids = new HashMap<>();
        outputs.forEach(o -> o.tokens().forEach(t -> ids.computeIfAbsent(o.requestId(), k -> new ArrayList<>()).add(t.tokenId())));
        return ids;
    }

    private static int[] referencePrefix(ReferenceCase.Prompt p, int n) {
        return java.util.Arrays.copyOf(p.greedy(), n);
    }

    /** 60 requests arriving at random steps, random max_tokens: each equals its solo greedy output. */
    private static long randomArrivals(LocalEngine engine, long seed) {
        Random random = new Random(seed);
        List<Request> pending = new ArrayList<>();
        Map<String, int[]> expected = new HashMap<>();
        for (int i = 0; i < 60; i++) {
            ReferenceCase.Prompt p = prompts.get(random.nextInt(prompts.size()));
            int maxTokens = 1 + random.nextInt(p.greedy().length);
            pending.add(Request.of("r" + i, p.ids(), LlamaGqaFixture.greedy(maxTokens)));
            expected.put("r" + i, referencePrefix(p, maxTokens));
        }
        List<RequestOutput> outputs = new ArrayList<>();
        while (!pending.isEmpty() || engine.core().hasWork()) {
            for (int k = random.nextInt(4); k > 0 && !pending.isEmpty(); k--) {
                engine.core().add(pending.removeFirst());
            }
            if (engine.core().hasWork()) {
                outputs.addAll(engine.step());
            }
        }
        Map<String, List<Integer>> got = collect(outputs);
        expected.forEach((id, ids) -> assertArrayEquals(ids,
                got.get(id).stream().mapToInt(Integer::intValue).toArray(), "request " + id));
        assertEquals(60, outputs.stream().filter(RequestOutput::finished).count());
        assertTrue(outputs.stream().filter(RequestOutput::finished)
                .allMatch(o -> o.finish().orElseThrow().reason() == FinishReason.LENGTH));
        var kv = engine.core().scheduler().kvCache();
        assertEquals(kv.numTotalBlocks(), kv.numFreeBlocks(), "a drained engine returns the pool to full");
        return engine.core().scheduler().numPreemptions();
    }

    @Test
    void randomArrivalsMatchSoloGreedy() {
        assertEquals(0, randomArrivals(engine(256, config(16, 64)), 1));
    }

    @Test
    void preemptionUnderATinyPoolKeepsOutputsExact() {
        long preemptions = randomArrivals(engine(10, config(16, 64)), 2);
        assertTrue(preemptions > 0, "the pool of 10 blocks should have forced preemption");
    }

    @Test
    void chunkedPrefillWithSixteenTokenBudget() {
        ReferenceCase.Prompt longest = prompts.get(3);
        assertEquals(40, longest.ids().length);
        LocalEngine engine = engine(64, config(4, 16));
        engine.core().add(Request.of("long", longest.ids(), LlamaGqaFixture.greedy(24)));
        List<Integer> chunks = new ArrayList<>();
        List<RequestOutput> outputs = new ArrayList<>();
        while (engine.core().hasWork()) {
            StepPlan plan = engine.core().plan();
            chunks.add(plan.numScheduledTokens());
            outputs.addAll(engine.core().complete(plan, engine.runner().execute(plan)));
        }
        assertEquals(List.of(16, 16, 8, 1), chunks.subList(0, 4));
        assertArrayEquals(longest.greedy(), collect(outputs).get("long").stream().mapToInt(Integer::intValue).toArray());
    }

    @Test
    void prefixCacheComputesOnlyUncachedTokensAndOnlyWithinScope() {
        ReferenceCase.Prompt p = prompts.get(3); // 40 tokens: two full blocks can be reused
        LocalEngine engine = engine(64, config(4, 256));
        engine.generate(List.of(Request.of("first", p.ids(), LlamaGqaFixture.greedy(24))));

        NewSequence same = admit(engine, new Request("same", p.ids(), LlamaGqaFixture.greedy(24), CacheScope.BASE, 0, 0, 0));
        assertEquals(32, same.numComputedTokens());
        assertEquals(8, same.numScheduledTokens());
        Map<String, List<Integer>> ids = collect(drain(engine));
        assertArrayEquals(p.greedy(), ids.get("same").stream().mapToInt(Integer::intValue).toArray());

        NewSequence salted = admit(engine, new Request("salted", p.ids(), LlamaGqaFixture.greedy(4), new CacheScope(0, "tenant-b"), 0, 0, 0));
        assertEquals(0, salted.numComputedTokens());
        drain(engine);
        NewSequence adapter = admit(engine, new Request("adapter", p.ids(), LlamaGqaFixture.greedy(4), new CacheScope(7, ""), 0, 0, 0));
        assertEquals(0, adapter.numComputedTokens());
        drain(engine);
        assertTrue(engine.core().scheduler().kvCache().prefixCacheStats().hits() >= 32);
    }

    private static List<RequestOutput> pendingOutputs = new ArrayList<>();

    private static NewSequence admit(LocalEngine engine, Request request) {
        engine.core().add(request);
        StepPlan plan = engine.core().plan();
        pendingOutputs = new ArrayList<>(engine.core().complete(plan, engine.runner().execute(plan)));
        return plan.newSequences().getFirst();
    }

    private static List<RequestOutput> drain(LocalEngine engine) {
        List<RequestOutput> all = new ArrayList<>(pendingOutputs);
        pendingOutputs = new ArrayList<>();
        engine.runToCompletion(all::add);
        return all;
    }

    @Test
    void abortFreesBlocksAtOnce() {
        LocalEngine engine = engine(64, config(4, 256));
        engine.core().add(Request.of("a", prompts.get(3).ids(), LlamaGqaFixture.greedy(24)));
        engine.step();
        engine.step();
        var kv = engine.core().scheduler().kvCache();
        assertTrue(kv.numFreeBlocks() < kv.numTotalBlocks());
        engine.core().abort("a", 1);
        assertEquals(kv.numTotalBlocks(), kv.numFreeBlocks());
        assertEquals(0, engine.core().scheduler().numRunning());
    }

    @Test
    void priorityPolicyRunsTheMoreUrgentRequestFirst() {
        LocalEngine engine = LlamaGqaFixture.engine(64, new SchedulerConfig(1, 256, 256, SchedulingPolicy.PRIORITY, true));
        engine.core().add(new Request("later-but-urgent", prompts.get(0).ids(), LlamaGqaFixture.greedy(2), CacheScope.BASE, 0, -1, 2));
        engine.core().add(new Request("early", prompts.get(1).ids(), LlamaGqaFixture.greedy(2), CacheScope.BASE, 0, 5, 1));
        List<RequestOutput> outputs = new ArrayList<>();
        engine.runToCompletion(outputs::add);
        assertEquals("later-but-urgent", outputs.getFirst().requestId());
        assertEquals("early", outputs.getLast().requestId());
    }
}
