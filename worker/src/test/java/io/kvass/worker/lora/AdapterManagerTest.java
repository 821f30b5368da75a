package io.kvass.worker.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.model.DType;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The adapter tiers as plain logic: a fake device, an executor the test drives by hand. */
class AdapterManagerTest {
    private static LoadedModel model;
    private static ModelConfig config;

    @TempDir
    Path tmp;
    private final ManualExecutor disk = new ManualExecutor();
    private final FakeDevice device = new FakeDevice(2);

    @BeforeAll
    static void load() {
        model = LoadedModel.load(Fixtures.reference("llama-gqa"));
        config = model.config();
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** Runs submitted tasks only when told to: "the disk read is still going" is a state the test controls. */
    static final class ManualExecutor implements Executor {
        private final Queue<Runnable> tasks = new ArrayDeque<>();

        @Override
        public void execute(Runnable task) {
            tasks.add(task);
        }

        int runAll() {
            int n = 0;
            while (!tasks.isEmpty()) {
                tasks.poll().run();
                n++;
            }
            return n;
        }
    }

    /** Records what the manager puts where. */
    static final class FakeDevice implements AdapterDevice {
        final Map<Integer, LoraWeights> slots = new HashMap<>();
        final List<String> log = new ArrayList<>();
        private final int maxLoras;

        FakeDevice(int maxLoras) {
            this.maxLoras = maxLoras;
        }

        @Override
        public int maxLoras() {
            return maxLoras;
        }

        @Override
        public void load(int slot, LoraWeights weights) {
            slots.put(slot, weights);
            log.add("load " + slot + " " + weights.dir().getFileName());
        }

        @Override
        public void unload(int slot) {
            slots.remove(slot);
            log.add("unload " + slot);
        }
    }

    private AdapterManager manager(int maxCpuLoras) {
        return new AdapterManager(config, new LoraOptions(new LoraCapacity(device.maxLoras(), 8), maxCpuLoras,
                List.of(tmp, Fixtures.root())), device, disk);
    }

    /** A small random adapter in {@code tmp/name}. */
    private Path adapter(String name) {
        return AdapterFiles.random(tmp.resolve(name), config, 2, List.of(LoraTarget.Q_PROJ), List.of(0, 1), DType.F32,
                name.hashCode(), c -> { });
    }

    private static int slot(SlotGrant g) {
        return assertInstanceOf(SlotGrant.Ready.class, g).slot();
    }

    private static AdapterTier tier(AdapterManager m, String name) {
        return m.adapters().stream().filter(s -> s.spec().name().equals(name)).findFirst().orElseThrow().tier();
    }

    @Test
    void idsAreStableAcrossReplicasAndDifferByNameAndContent() {
        AdapterSpec a = manager(4).register("support", Fixtures.reference("llama-gqa").resolve("adapter-a"));
        AdapterSpec again = new AdapterManager(config, LoraOptions.of(2, 8, List.of(Fixtures.root())), device, disk)
                .register("support", Fixtures.reference("llama-gqa").resolve("adapter-a"));
        assertEquals(a.id(), again.id());
        assertTrue(a.id() > 0);
        AdapterManager m = manager(4);
        AdapterSpec renamed = m.register("other", Fixtures.reference("llama-gqa").resolve("adapter-a"));
        AdapterSpec b = m.register("b", Fixtures.reference("llama-gqa").resolve("adapter-b"));
        assertNotEquals(a.id(), renamed.id());
        assertNotEquals(renamed.id(), b.id());
        assertEquals(renamed, m.register("other", Fixtures.reference("llama-gqa").resolve("adapter-a")), "idempotent");
        assertThrows(IllegalArgumentException.class, () -> m.register("other", Fixtures.reference("llama-gqa").resolve("adapter-b")));
        assertEquals(b, m.find("b").orElseThrow());
        assertEquals(b, m.find(b.id()).orElseThrow());
    }

    @Test
    void registrationValidatesAtOnce() {
        AdapterManager m = manager(2);
        assertThrows(AdapterLoadException.class, () -> m.register("x", tmp.resolve("missing")));
        assertTrue(m.adapters().isEmpty());
    }

    @Test
    void hostTierEvictsLeastRecentlyUsedAndReloadsFromDisk() {
        AdapterManager m = manager(2);
        AdapterSpec a = m.register("a", adapter("a"));
        AdapterSpec b = m.register("b", adapter("b"));
        assertEquals(AdapterTier.HOST, tier(m, "a"));
        m.acquire(a.id());      // a used: b is now least recently used
        m.release(a.id());
        AdapterSpec c = m.register("c", adapter("c"));
        assertEquals(AdapterTier.DEVICE, tier(m, "a"));
        assertEquals(AdapterTier.DISK, tier(m, "b"));
        assertEquals(AdapterTier.HOST, tier(m, "c"));

        m.beginRequest(b.id()); // a request for a cold adapter starts the disk read...
        assertEquals(AdapterTier.LOADING, tier(m, "b"));
        assertInstanceOf(SlotGrant.Wait.class, m.acquire(b.id())); // ...and waits for it
        assertEquals(1, disk.runAll());
        assertEquals(AdapterTier.HOST, tier(m, "b"));
        assertEquals(AdapterTier.DISK, tier(m, "c"), "c was the least recently used of the host tier");
        assertTrue(slot(m.acquire(b.id())) > 0);
        assertEquals(AdapterTier.DEVICE, tier(m, "b"));
        assertEquals(c.id(), m.find("c").orElseThrow().id());
    }

    @Test
    void hostEvictionSparesAdaptersWithRequestsInFlight() {
        AdapterManager m = manager(2);
        AdapterSpec a = m.register("a", adapter("a"));
        m.register("b", adapter("b"));
        m.beginRequest(a.id()); // a is the LRU entry but someone waits for it
        m.register("c", adapter("c"));
        assertEquals(AdapterTier.HOST, tier(m, "a"));
        assertEquals(AdapterTier.DISK, tier(m, "b"));
    }

    @Test
    void slotsGoOnlyToAdaptersWithoutRunningSequences() {
        AdapterManager m = manager(4);
        AdapterSpec a = m.register("a", adapter("a"));
        AdapterSpec b = m.register("b", adapter("b"));
        AdapterSpec c = m.register("c", adapter("c"));
        assertEquals(new SlotGrant.Ready(0), m.acquire(0));
        assertEquals(1, slot(m.acquire(a.id())));
        assertEquals(2, slot(m.acquire(b.id())));
        assertEquals(2, slot(m.acquire(b.id())), "a resident adapter needs no new slot");
        assertEquals(List.of("load 1 a", "load 2 b"), device.log);

        SlotGrant full = m.acquire(c.id());
        assertTrue(assertInstanceOf(SlotGrant.Wait.class, full).reason().contains("in use"), full.toString());
        m.release(b.id());
        assertInstanceOf(SlotGrant.Wait.class, m.acquire(c.id()), "b still has a running sequence");
        m.release(b.id());
        assertEquals(2, slot(m.acquire(c.id())), "b's slot is the only one without running sequences");
        assertEquals("load 2 c", device.log.getLast());
        assertEquals(AdapterTier.HOST, tier(m, "b"));
        assertEquals(AdapterTier.DEVICE, tier(m, "a"));
    }

    @Test
    void slotEvictionPrefersAdaptersWithNoRequestInFlight() {
        AdapterManager m = manager(4);
        AdapterSpec a = m.register("a", adapter("a"));
        AdapterSpec b = m.register("b", adapter("b"));
        AdapterSpec c = m.register("c", adapter("c"));
        m.beginRequest(a.id());
        slot(m.acquire(a.id()));
        m.release(a.id());         // a's sequence was preempted: its request is still in flight
        slot(m.acquire(b.id()));
        m.release(b.id());         // b finished: b is more recently used than a, but idle
        m.acquire(c.id());
        assertEquals(AdapterTier.DEVICE, tier(m, "a"));
        assertEquals(AdapterTier.HOST, tier(m, "b"));
    }

    @Test
    void unloadWaitsForRequestsInFlight() {
        AdapterManager m = manager(2);
        AdapterSpec a = m.register("a", adapter("a"));
        m.beginRequest(a.id());
        m.beginRequest(a.id());
        int slot = slot(m.acquire(a.id()));
        CompletableFuture<Void> gone = m.unload("a").toCompletableFuture();
        assertFalse(gone.isDone());
        assertTrue(m.find("a").isEmpty(), "no new requests find it");
        assertThrows(IllegalArgumentException.class, () -> m.beginRequest(a.id()));
        assertThrows(IllegalArgumentException.class, () -> m.register("a", adapter("a2")));
        assertEquals(slot, slot(m.acquire(a.id())), "requests in flight still run");
        m.release(a.id());
        m.release(a.id());
        m.endRequest(a.id());
        assertFalse(gone.isDone());
        m.endRequest(a.id());
        assertTrue(gone.isDone());
        assertTrue(m.adapters().isEmpty());
        assertFalse(device.log.contains("unload " + slot), "never while a step may run");
        m.syncDevice();
        assertEquals("unload " + slot, device.log.getLast());
        assertInstanceOf(SlotGrant.Failed.class, m.acquire(a.id()));
        assertEquals(a, m.register("a", adapter("a")), "the name can be registered again");
    }

    /** A restarted engine starts with no requests: the counts of the one before must not pin slots or block unloads. */
    @Test
    void forgetRequestsFreesWhatADeadEngineHeld() {
        AdapterManager m = manager(2);
        AdapterSpec a = m.register("a", adapter("a"));
        AdapterSpec b = m.register("b", adapter("b"));
        m.beginRequest(a.id());
        m.beginRequest(b.id());
        slot(m.acquire(a.id()));
        slot(m.acquire(b.id()));
        CompletableFuture<Void> gone = m.unload("b").toCompletableFuture();
        assertFalse(gone.isDone());
        m.forgetRequests();
        assertTrue(gone.isDone(), "the unload waited for requests that no engine runs any more");
        assertEquals(1, m.adapters().size());
        assertEquals(0, m.adapters().getFirst().inFlight() + m.adapters().getFirst().running());
        assertEquals(AdapterTier.DEVICE, tier(m, "a"), "loaded slots stay loaded");
        m.beginRequest(a.id());
        slot(m.acquire(a.id()));
        m.release(a.id());
        m.endRequest(a.id());
    }

    @Test
    void unloadOfAnIdleAdapterIsImmediate() {
        AdapterManager m = manager(2);
        m.register("a", adapter("a"));
        assertTrue(m.unload("a").toCompletableFuture().isDone());
        assertTrue(m.unload("nope").toCompletableFuture().isCompletedExceptionally());
        assertThrows(IllegalArgumentException.class, () -> m.beginRequest(12345));
    }

    @Test
    void listenersHearWhenALoadFinishesAndFailuresAreReported() throws IOException {
        AdapterManager m = manager(2);
        AtomicInteger heard = new AtomicInteger();
        m.addListener(heard::incrementAndGet);
        Path dirA = adapter("a");
        AdapterSpec a = m.register("a", dirA);
        m.register("b", adapter("b"));
        m.register("c", adapter("c")); // pushes a out of the host tier
        assertEquals(AdapterTier.DISK, tier(m, "a"));

        Files.writeString(dirA.resolve(LoraLoader.CONFIG), Files.readString(dirA.resolve(LoraLoader.CONFIG))
                .replace("\"lora_alpha\":4.0", "\"lora_alpha\":5.0"));
        m.beginRequest(a.id());
        disk.runAll();
        assertEquals(1, heard.get());
        SlotGrant changed = m.acquire(a.id());
        assertTrue(assertInstanceOf(SlotGrant.Failed.class, changed).reason().contains("changed on disk"), changed.toString());

        Files.delete(dirA.resolve(LoraLoader.WEIGHTS));
        m.endRequest(a.id());
        m.beginRequest(a.id()); // a new request tries again
        disk.runAll();
        SlotGrant missing = m.acquire(a.id());
        assertTrue(assertInstanceOf(SlotGrant.Failed.class, missing).reason().contains("missing adapter_model"), missing.toString());
    }

    @Test
    void registerAsyncRunsOnTheLoader() {
        AdapterManager m = manager(2);
        var stage = m.registerAsync("a", adapter("a")).toCompletableFuture();
        assertFalse(stage.isDone());
        disk.runAll();
        assertEquals("a", stage.join().name());
    }
}
