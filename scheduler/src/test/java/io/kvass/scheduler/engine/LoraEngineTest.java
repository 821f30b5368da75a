package io.kvass.scheduler.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.core.AdapterGate;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.lora.AdapterDevice;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.AdapterSpec;
import io.kvass.worker.lora.AdapterTier;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.IdTokenizer;
import io.kvass.worker.testing.ReferenceCase;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Multi-LoRA serving through the scheduler and engine on the CPU backend: requests name adapters by
 * id, adapters move between disk, host and a few backend slots, and every request still reproduces
 * PEFT's greedy ids. qwen2-bias is used because its PEFT and base references share one RoPE setup
 * (see CpuLoraReferenceTest).
 */
class LoraEngineTest {
    private static final String VARIANT = "qwen2-bias";
    private static final ActorTestKit KIT = ActorTestKit.create();
    private static LoadedModel model;
    private static Map<String, List<ReferenceCase.Prompt>> refs = new HashMap<>();

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        model = LoadedModel.load(Fixtures.reference(VARIANT));
        for (String tag : List.of("base", "adapter-a", "adapter-b")) {
            refs.put(tag, ReferenceCase.load(VARIANT, tag));
        }
    }

    @AfterAll
    static void close() {
        KIT.shutdownTestKit();
        model.close();
    }

    /** Disk reads happen when the test says so. */
    private static final class ManualExecutor implements Executor {
        private final Queue<Runnable> tasks = new ArrayDeque<>();

        @Override
        public synchronized void execute(Runnable task) {
            tasks.add(task);
        }

        void runAll() {
            Runnable r;
            while ((r = next()) != null) {
                r.run();
            }
        }

        private synchronized Runnable next() {
            return tasks.poll();
        }
    }

    private record Replica(LocalEngine engine, AdapterManager adapters, CpuBackend backend) {
    }

    private Replica replica(int maxLoras, int maxCpuLoras, Executor loader) {
        LoraOptions options = new LoraOptions(new LoraCapacity(maxLoras, 8), maxCpuLoras, List.of(Fixtures.root(), tmp));
        CpuBackend backend = new CpuBackend(model, 128, 16, 2, options.device());
        AdapterManager adapters = new AdapterManager(model.config(), options, AdapterDevice.of(backend), loader);
        LocalEngine engine = LocalEngine.of(backend, new IdTokenizer(600),
                new SchedulerConfig(16, 64, 256, SchedulingPolicy.FCFS, true), AdapterGate.managed(adapters));
        return new Replica(engine, adapters, backend);
    }

    private static Path fixture(String tag) {
        return Fixtures.reference(VARIANT).resolve(tag);
    }

    private static Request request(String id, ReferenceCase.Prompt p, AdapterSpec adapter) {
        CacheScope scope = adapter == null ? CacheScope.BASE : new CacheScope(adapter.id(), "");
        return new Request(id, p.ids(), SamplingParams.greedy(24).toBuilder().ignoreEos(true).build(), scope, 0, 0,
                System.nanoTime());
    }

    private static Map<String, int[]> tokens(List<RequestOutput> outputs) {
        Map<String, List<Integer>> ids = new HashMap<>();
        outputs.forEach(o -> o.tokens().forEach(t -> ids.computeIfAbsent(o.requestId(), k -> new ArrayList<>()).add(t.tokenId())));
        Map<String, int[]> out = new HashMap<>();
        ids.forEach((k, v) -> out.put(k, v.stream().mapToInt(Integer::intValue).toArray()));
        return out;
    }

    /** 12 requests (4 prompts x base, a, b) through ONE adapter slot: a and b take turns, every id matches. */
    @Test
    void baseAndTwoAdaptersThroughOneSlotMatchPeft() {
        Replica r = replica(1, 2, Runnable::run);
        Map<String, AdapterSpec> specs = Map.of("adapter-a", r.adapters().register("a", fixture("adapter-a")),
                "adapter-b", r.adapters().register("b", fixture("adapter-b")));
        List<Request> requests = new ArrayList<>();
        Map<String, int[]> expected = new HashMap<>();
        for (int i = 0; i < 4; i++) {
            for (String tag : List.of("base", "adapter-a", "adapter-b")) {
                ReferenceCase.Prompt p = refs.get(tag).get(i);
                requests.add(request(tag + "-" + i, p, specs.get(tag)));
                expected.put(tag + "-" + i, p.greedy());
            }
        }
        Map<String, int[]> got = tokens(r.engine().generate(requests));
        expected.forEach((id, ids) -> assertArrayEquals(ids, got.get(id), id));
        r.adapters().adapters().forEach(s -> assertEquals(0, s.inFlight() + s.running(), s.toString()));
        r.engine().runner().backend().close();
    }

    /** A request for an adapter on disk waits for the read while base requests keep producing tokens. */
    @Test
    void coldAdapterWaitsWhileOthersRun() {
        ManualExecutor disk = new ManualExecutor();
        Replica r = replica(2, 2, disk);
        AdapterSpec a = r.adapters().register("a", fixture("adapter-a"));
        r.adapters().register("b", fixture("adapter-b"));
        r.adapters().register("a-again", fixture("adapter-a")); // the host tier holds 2: "a" goes back to disk
        assertEquals(AdapterTier.DISK, r.adapters().adapters().getFirst().tier());

        r.engine().core().add(request("cold", refs.get("adapter-a").get(1), a));
        r.engine().core().add(request("warm", refs.get("base").get(1), null));
        List<RequestOutput> outputs = new ArrayList<>();
        while (outputs.stream().noneMatch(o -> o.requestId().equals("warm") && o.finished())) {
            outputs.addAll(r.engine().step());
        }
        assertTrue(outputs.stream().noneMatch(o -> o.requestId().equals("cold")), "the cold adapter's request waited");
        assertEquals(AdapterTier.LOADING, r.adapters().adapters().getFirst().tier());
        disk.runAll();
        r.engine().runToCompletion(outputs::add);
        assertArrayEquals(refs.get("adapter-a").get(1).greedy(), tokens(outputs).get("cold"));
        assertArrayEquals(refs.get("base").get(1).greedy(), tokens(outputs).get("warm"));
        r.engine().runner().backend().close();
    }

    @Test
    void requestsForUnknownAdaptersAreRejected() {
        Replica r = replica(1, 1, Runnable::run);
        var e = assertThrows(IllegalArgumentException.class,
                () -> r.engine().core().add(request("x", refs.get("base").get(0), new AdapterSpec("ghost", 42, tmp, "f"))));
        assertTrue(e.getMessage().contains("42"), e.getMessage());
        assertFalse(r.engine().core().hasWork());
        r.engine().runner().backend().close();
    }

    @Test
    void unloadingAnAdapterInUseLetsItsRequestsFinish() {
        Replica r = replica(1, 1, Runnable::run);
        AdapterSpec a = r.adapters().register("a", fixture("adapter-a"));
        r.engine().core().add(request("first", refs.get("adapter-a").get(3), a));
        List<RequestOutput> outputs = new ArrayList<>(r.engine().step());
        CompletableFuture<Void> gone = r.adapters().unload("a").toCompletableFuture();
        assertFalse(gone.isDone());
        assertThrows(IllegalArgumentException.class, () -> r.engine().core().add(request("late", refs.get("adapter-a").get(0), a)));
        r.engine().runToCompletion(outputs::add);
        assertArrayEquals(refs.get("adapter-a").get(3).greedy(), tokens(outputs).get("first"));
        assertTrue(gone.isDone());
        assertTrue(r.adapters().adapters().isEmpty());
        r.engine().runner().backend().close();
    }

    @Test
    void anAdapterThatCannotBeReadAnyMoreFailsItsRequest() throws IOException {
        Replica r = replica(1, 1, Runnable::run);
        Path copy = Files.createDirectories(tmp.resolve("copy"));
        for (String f : List.of(LoraLoader.CONFIG, LoraLoader.WEIGHTS)) {
            Files.copy(fixture("adapter-b").resolve(f), copy.resolve(f));
        }
        AdapterSpec b = r.adapters().register("b", copy);
        r.adapters().register("a", fixture("adapter-a")); // b leaves the single host entry
        Files.delete(copy.resolve(LoraLoader.WEIGHTS));
        r.engine().core().add(request("doomed", refs.get("adapter-b").get(0), b));
        r.engine().core().add(request("fine", refs.get("base").get(0), null));
        List<RequestOutput> outputs = new ArrayList<>();
        r.engine().runToCompletion(outputs::add);
        var failures = r.engine().core().drainFailures();
        assertEquals(1, failures.size());
        assertEquals("doomed", failures.getFirst().requestId());
        assertTrue(failures.getFirst().reason().contains("missing adapter_model.safetensors"), failures.getFirst().reason());
        assertArrayEquals(refs.get("base").get(0).greedy(), tokens(outputs).get("fine"));
        r.engine().runner().backend().close();
    }

    /** The actor idles while only a cold adapter's request waits, and the finished load wakes it. */
    @Test
    void engineActorWakesWhenAnAdapterFinishesLoading() {
        ExecutorService disk = Executors.newSingleThreadExecutor();
        try {
            Replica r = replica(1, 1, disk);
            AdapterSpec a = r.adapters().register("a", fixture("adapter-a"));
            AdapterSpec b = r.adapters().register("b", fixture("adapter-b")); // a goes back to disk
            ActorRef<Engine.Command> engine = KIT.spawn(Engine.create(r.engine().core(), StepExecutor.local(r.engine().runner())));
            TestProbe<Engine.Event> probeA = KIT.createTestProbe();
            TestProbe<Engine.Event> probeB = KIT.createTestProbe();
            engine.tell(new Engine.Submit(request("ra", refs.get("adapter-a").get(2), a), probeA.getRef()));
            engine.tell(new Engine.Submit(request("rb", refs.get("adapter-b").get(2), b), probeB.getRef()));
            assertArrayEquals(refs.get("adapter-a").get(2).greedy(), collect(probeA));
            assertArrayEquals(refs.get("adapter-b").get(2).greedy(), collect(probeB));
        } finally {
            disk.shutdownNow();
        }
    }

    private static int[] collect(TestProbe<Engine.Event> probe) {
        List<Integer> ids = new ArrayList<>();
        while (true) {
            Engine.Output out = assertInstanceOf(Engine.Output.class, probe.receiveMessage(Duration.ofSeconds(30)));
            out.output().tokens().forEach(t -> ids.add(t.tokenId()));
            if (out.output().finished()) {
                return ids.stream().mapToInt(Integer::intValue).toArray();
            }
        }
    }
}
