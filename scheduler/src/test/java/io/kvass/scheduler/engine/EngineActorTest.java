package io.kvass.scheduler.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import io.kvass.worker.testing.ReferenceCase;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class EngineActorTest {
    private static final ActorTestKit KIT = ActorTestKit.create();
    private static final List<ReferenceCase.Prompt> prompts = LlamaGqaFixture.PROMPTS;

    @AfterAll
    static void close() {
        KIT.shutdownTestKit();
    }

    private static LocalEngine local(int blocks) {
        return LlamaGqaFixture.engine(blocks, new SchedulerConfig(8, 64, 256, SchedulingPolicy.FCFS, true));
    }

    /** Collects one request's token ids until its finish. */
    private static int[] tokensUntilFinish(TestProbe<Engine.Event> probe) {
        List<Integer> ids = new ArrayList<>();
        while (true) {
            Engine.Event e = probe.receiveMessage(Duration.ofSeconds(30));
            Engine.Output out = assertInstanceOf(Engine.Output.class, e);
            out.output().tokens().forEach(t -> ids.add(t.tokenId()));
            if (out.output().finished()) {
                return ids.stream().mapToInt(Integer::intValue).toArray();
            }
        }
    }

    @Test
    void streamsEveryRequestsTokensWhileOthersJoin() {
        LocalEngine local = local(64);
        ActorRef<Engine.Command> engine = KIT.spawn(Engine.create(local.core(), StepExecutor.local(local.runner())));
        Map<Integer, TestProbe<Engine.Event>> probes = new HashMap<>();
        for (int i = 0; i < 8; i++) {
            TestProbe<Engine.Event> probe = KIT.createTestProbe();
            probes.put(i, probe);
            engine.tell(new Engine.Submit(Request.of("r" + i, prompts.get(i % 4).ids(), LlamaGqaFixture.greedy(24)), probe.getRef()));
        }
        for (int i = 0; i < 8; i++) {
            assertArrayEquals(prompts.get(i % 4).greedy(), tokensUntilFinish(probes.get(i)), "r" + i);
        }
        TestProbe<EngineStats> stats = KIT.createTestProbe();
        engine.tell(new Engine.GetStats(stats.getRef()));
        EngineStats s = stats.receiveMessage();
        assertEquals(0, s.numRunning());
        assertEquals(s.numKvBlocks(), s.numFreeKvBlocks());
    }

    @Test
    void tooLongPromptIsRejectedWithAReason() {
        LocalEngine local = local(64);
        ActorRef<Engine.Command> engine = KIT.spawn(Engine.create(local.core(), StepExecutor.local(local.runner())));
        TestProbe<Engine.Event> probe = KIT.createTestProbe();
        engine.tell(new Engine.Submit(Request.of("long", new int[300], LlamaGqaFixture.greedy(4)), probe.getRef()));
        Engine.Rejected r = probe.expectMessageClass(Engine.Rejected.class);
        assertTrue(r.reason().contains("maximum context length"), r.reason());
    }

    @Test
    void aFailingWorkerStepIsRecomputedAndNoTokenIsLostOrDuplicated() {
        LocalEngine local = local(64);
        StepExecutor real = StepExecutor.local(local.runner());
        AtomicInteger calls = new AtomicInteger();
        StepExecutor flaky = new StepExecutor() {
            @Override
            public CompletionStage<StepResult> execute(StepPlan plan) {
                if (calls.incrementAndGet() == 5) {
                    return CompletableFuture.failedFuture(new IllegalStateException("simulated CUDA error"));
                }
                return real.execute(plan);
            }

            @Override
            public java.util.concurrent.CompletionStage<Void> reset() {
                return real.reset();
            }

            @Override
            public void close() {
                real.close();
            }
        };
        ActorRef<Engine.Command> engine = KIT.spawn(Engine.create(local.core(), flaky));
        TestProbe<Engine.Event> probe = KIT.createTestProbe();
        engine.tell(new Engine.Submit(Request.of("r", prompts.get(2).ids(), LlamaGqaFixture.greedy(24)), probe.getRef()));
        assertArrayEquals(prompts.get(2).greedy(), tokensUntilFinish(probe));
        assertTrue(calls.get() > 24, "the failed step was retried");
    }
}
