package io.kvass.scheduler.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Sampling, stop strings and n through the whole engine on the real stories260K model and tokenizer. */
class SamplingThroughEngineTest {
    private static ModelReplica replica;
    private static String expectedText;

    @BeforeAll
    static void load() throws Exception {
        replica = ModelReplica.load(ReplicaOptions.cpu(Fixtures.stories260K()));
        expectedText = new ObjectMapper().readTree(Fixtures.stories260K().resolve("expected.json").toFile())
                .path("expected_text").asText();
    }

    @AfterAll
    static void close() {
        replica.close();
    }

    private static LocalEngine engine() {
        return LocalEngine.of(replica.backend(), replica.tokenizer(),
                new SchedulerConfig(32, 128, replica.maxModelLen(), SchedulingPolicy.FCFS, true));
    }

    private record Completion(List<Integer> ids, String text, RequestOutput last) {
    }

    private static Map<String, Completion> run(List<Request> requests) {
        Map<String, List<Integer>> ids = new HashMap<>();
        Map<String, StringBuilder> text = new HashMap<>();
        Map<String, RequestOutput> last = new HashMap<>();
        for (RequestOutput o : engine().generate(requests)) {
            String key = o.requestId() + "/" + o.index();
            o.tokens().forEach(t -> ids.computeIfAbsent(key, k -> new ArrayList<>()).add(t.tokenId()));
            text.computeIfAbsent(key, k -> new StringBuilder()).append(o.text());
            last.put(key, o);
        }
        Map<String, Completion> out = new HashMap<>();
        ids.forEach((k, v) -> out.put(k, new Completion(v, text.get(k).toString(), last.get(k))));
        return out;
    }

    private static int[] prompt(String text) {
        return replica.tokenizer().encode(text, true);
    }

    @Test
    void seededRequestGivesTheSameTokensWhateverElseIsInTheBatch() {
        SamplingParams seeded = SamplingParams.builder().temperature(0.9f).topP(0.95f).maxTokens(40).seed(42).build();
        Request alone = Request.of("seeded", prompt("Once upon a time"), seeded);
        List<Integer> soloIds = run(List.of(alone)).get("seeded/0").ids();

        Random random = new Random(7);
        List<Request> mix = new ArrayList<>();
        String[] others = {"The dog", "Lily", "One day, a big", "Tom and Sue went", "The sun"};
        for (int i = 0; i < 6; i++) {
            mix.add(Request.of("other" + i, prompt(others[random.nextInt(others.length)]),
                    SamplingParams.builder().temperature(1.0f).maxTokens(10 + random.nextInt(40)).build()));
        }
        mix.add(3, Request.of("seeded", prompt("Once upon a time"), seeded));
        Map<String, Completion> mixed = run(mix);
        assertEquals(soloIds, mixed.get("seeded/0").ids());

        SamplingParams otherSeed = SamplingParams.builder().temperature(0.9f).topP(0.95f).maxTokens(40).seed(43).build();
        assertNotEquals(soloIds, run(List.of(Request.of("seeded", prompt("Once upon a time"), otherSeed))).get("seeded/0").ids());
    }

    @Test
    void stopStringEndsTheTextBeforeItAcrossTokenBoundaries() {
        String stop = "little girl"; // spans several tokens of this vocabulary
        SamplingParams p = SamplingParams.builder().temperature(0).maxTokens(200).stop(List.of(stop)).build();
        Completion c = run(List.of(Request.of("s", new int[] {1}, p))).get("s/0");
        assertEquals(expectedText.substring(0, expectedText.indexOf(stop)), c.text());
        assertEquals(FinishReason.STOP, c.last().finish().orElseThrow().reason());
        assertEquals(stop, c.last().finish().orElseThrow().stopReason().orElseThrow());
        assertTrue(c.ids().size() < 20, "generation stopped at the stop string");
    }

    /**
     * The same through the {@link Engine} actor, where a step's outputs are made while the next step runs: the
     * stop string is seen after the next plan already holds its sequence, whose token from that step must be
     * dropped. A second request keeps every step busy; its greedy text is unaffected, and the KV pool is whole
     * at the end.
     */
    @Test
    void stopStringSeenWhileTheNextStepRunsThroughTheEngineActor() {
        org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit kit =
                org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit.create();
        try {
            LocalEngine local = engine();
            var engine = kit.spawn(Engine.create(local.core(), StepExecutor.local(local.runner())));
            String stop = "little girl";
            var stopped = kit.<Engine.Event>createTestProbe();
            var other = kit.<Engine.Event>createTestProbe();
            engine.tell(new Engine.Submit(Request.of("other", new int[] {1}, SamplingParams.greedy(60)), other.getRef()));
            engine.tell(new Engine.Submit(Request.of("s", new int[] {1},
                    SamplingParams.builder().temperature(0).maxTokens(200).stop(List.of(stop)).build()), stopped.getRef()));
            Completion s = collect(stopped);
            assertEquals(expectedText.substring(0, expectedText.indexOf(stop)), s.text());
            assertEquals(FinishReason.STOP, s.last().finish().orElseThrow().reason());
            Completion o = collect(other);
            assertTrue(expectedText.startsWith(o.text()) && o.ids().size() == 60, "the other request's greedy text");
            var stats = kit.<EngineStats>createTestProbe();
            engine.tell(new Engine.GetStats(stats.getRef()));
            EngineStats st = stats.receiveMessage();
            assertEquals(0, st.numRunning());
            assertEquals(st.numKvBlocks(), st.numFreeKvBlocks());
        } finally {
            kit.shutdownTestKit();
        }
    }

    private static Completion collect(org.apache.pekko.actor.testkit.typed.javadsl.TestProbe<Engine.Event> probe) {
        List<Integer> ids = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        while (true) {
            Engine.Output out = (Engine.Output) probe.receiveMessage(java.time.Duration.ofSeconds(30));
            out.output().tokens().forEach(t -> ids.add(t.tokenId()));
            text.append(out.output().text());
            if (out.output().finished()) {
                return new Completion(ids, text.toString(), out.output());
            }
        }
    }

    @Test
    void greedyTextEqualsTheGoldenTextAndNGivesIndependentSeededCompletions() {
        Completion greedy = run(List.of(Request.of("g", new int[] {1}, SamplingParams.greedy(200)))).get("g/0");
        assertEquals(expectedText, greedy.text());
        assertEquals(FinishReason.LENGTH, greedy.last().finish().orElseThrow().reason());

        SamplingParams three = SamplingParams.builder().n(3).temperature(1.0f).maxTokens(30).seed(5).build();
        Map<String, Completion> first = run(List.of(Request.of("n", prompt("Once upon a time"), three)));
        Map<String, Completion> second = run(List.of(Request.of("n", prompt("Once upon a time"), three)));
        assertEquals(3, first.size());
        for (int i = 0; i < 3; i++) {
            assertEquals(first.get("n/" + i).ids(), second.get("n/" + i).ids());
        }
        assertNotEquals(first.get("n/0").ids(), first.get("n/1").ids());
    }

    @Test
    void logprobsAreReportedSortedForEachToken() {
        SamplingParams p = SamplingParams.builder().temperature(0).maxTokens(5).logprobs(java.util.OptionalInt.of(3)).build();
        for (RequestOutput o : engine().generate(List.of(Request.of("lp", new int[] {1}, p)))) {
            var token = o.tokens().getFirst();
            assertEquals(3, token.topLogprobs().size());
            assertEquals(token.tokenId(), token.topLogprobs().getFirst().tokenId(), "greedy picks the top logprob");
            assertTrue(token.logprob() <= 0 && token.topLogprobs().get(1).logprob() <= token.topLogprobs().get(0).logprob());
        }
    }
}
