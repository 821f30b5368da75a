package io.kvass.worker.lora;

import io.kvass.worker.model.ModelConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;

/**
 * One replica's LoRA adapters in three tiers: backend slots ({@code maxLoras}), decoded copies in
 * host memory (an LRU of {@code maxCpuLoras}), and the adapter directories on disk.
 *
 * <p>Two counts per adapter drive it. <em>In flight</em>: requests submitted and not finished
 * ({@link #beginRequest}/{@link #endRequest}); unloading waits for them. <em>Running</em>: sequences in
 * the running batch ({@link #acquire}/{@link #release}); they pin the adapter's slot, and only a slot
 * with no running sequence is ever given to another adapter (one with no request in flight first).
 *
 * <p>Reading from disk happens on the {@code loader} executor, never on the step loop: {@link #acquire}
 * answers {@link SlotGrant.Wait} while it runs, and listeners hear when it is done, so a cold adapter's
 * requests wait while everyone else's keep running.
 *
 * <p>NOTE: thread-safe. Backend slot changes happen only inside {@link #acquire} and {@link #syncDevice},
 * which the engine calls while building a step (no forward pass running).
 */
public final class AdapterManager {
    private final LoraLoader loader;
    private final AdapterDevice device;
    private final Executor executor;
    private final HostAdapterCache host;
    private final AdapterSlots slots;
    private final Map<String, Entry> byName = new HashMap<>();
    private final Map<Long, Entry> byId = new HashMap<>();
    private final List<Integer> pendingUnloads = new ArrayList<>();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();

    private static final class Entry {
        final AdapterSpec spec;
        final CompletableFuture<Void> drained = new CompletableFuture<>();
        int inFlight;
        int running;
        boolean draining;
        CompletableFuture<LoraWeights> loading;
        String failure;

        Entry(AdapterSpec spec) {
            this.spec = spec;
        }
    }

    public AdapterManager(ModelConfig base, LoraOptions options, AdapterDevice device, Executor loader) {
        if (device.maxLoras() != options.device().maxLoras()) {
            throw new IllegalArgumentException("the backend has " + device.maxLoras() + " LoRA slots, the options say "
                    + options.device().maxLoras());
        }
        this.loader = new LoraLoader(base, options.device().maxRank(), options.allowedRoots());
        this.device = device;
        this.executor = loader;
        this.host = new HostAdapterCache(options.maxCpuLoras());
        this.slots = new AdapterSlots(options.device().maxLoras());
    }

    /** Backend slots: how many adapters one step can use (vLLM's {@code max_loras}). */
    public int maxLoras() {
        return slots.maxLoras();
    }

    /** Called (on some thread) whenever an adapter finished loading from disk, or failed to. */
    public void addListener(Runnable onLoaded) {
        listeners.add(onLoaded);
    }

    /**
     * Reads and validates the adapter in {@code dir} on the calling thread and registers it as
     * {@code name}, decoded in host memory. Registering the same name and directory again is a no-op.
     *
     * @throws AdapterLoadException     when the adapter cannot be served (the message says why)
     * @throws IllegalArgumentException when {@code name} is taken by another adapter or being unloaded
     */
    public AdapterSpec register(String name, Path dir) {
        AdapterNames.check(name);
        synchronized (this) {
            Entry existing = byName.get(name);
            if (existing != null) {
                return sameAdapter(existing, dir);
            }
        }
        LoraWeights weights = loader.load(dir);
        AdapterSpec spec = new AdapterSpec(name, AdapterSpec.idOf(name, weights.fingerprint()), weights.dir(),
                weights.fingerprint());
        synchronized (this) {
            Entry existing = byName.get(name);
            if (existing != null) {
                return sameAdapter(existing, dir);
            }
            if (byId.containsKey(spec.id())) {
                throw new IllegalStateException("adapter id " + spec.id() + " of '" + name + "' collides with '"
                        + byId.get(spec.id()).spec.name() + "'");
            }
            Entry entry = new Entry(spec);
            byName.put(name, entry);
            byId.put(spec.id(), entry);
            host.put(spec.id(), weights, this::wanted);
            return spec;
        }
    }

    /** {@link #register} on the loader executor. */
    public CompletionStage<AdapterSpec> registerAsync(String name, Path dir) {
        return CompletableFuture.supplyAsync(() -> register(name, dir), executor);
    }

    private AdapterSpec sameAdapter(Entry existing, Path dir) {
        if (existing.draining) {
            throw new IllegalArgumentException("adapter '" + existing.spec.name() + "' is being unloaded");
        }
        if (!loader.resolve(dir).equals(existing.spec.dir())) {
            throw new IllegalArgumentException("adapter name '" + existing.spec.name() + "' is already registered for "
                    + existing.spec.dir());
        }
        return existing.spec;
    }

    public synchronized Optional<AdapterSpec> find(String name) {
        return Optional.ofNullable(byName.get(name)).filter(e -> !e.draining).map(e -> e.spec);
    }

    public synchronized Optional<AdapterSpec> find(long id) {
        return Optional.ofNullable(byId.get(id)).map(e -> e.spec);
    }

    /** Every registered adapter, by name. */
    public synchronized List<AdapterStatus> adapters() {
        return byName.values().stream().map(this::status)
                .sorted(Comparator.comparing(s -> s.spec().name())).toList();
    }

    private AdapterStatus status(Entry e) {
        int slot = slots.slotOf(e.spec.id());
        AdapterTier tier = slot > 0 ? AdapterTier.DEVICE : host.contains(e.spec.id()) ? AdapterTier.HOST
                : e.loading != null ? AdapterTier.LOADING : AdapterTier.DISK;
        return new AdapterStatus(e.spec, tier, slot, e.inFlight, e.running, e.draining);
    }

    /**
     * A request for adapter {@code id} (0 = base model) was accepted: it counts as in flight until
     * {@link #endRequest}. Starts reading the adapter from disk if no tier above holds it.
     *
     * @throws IllegalArgumentException for an unknown adapter or one being unloaded
     */
    public synchronized void beginRequest(long id) {
        if (id == 0) {
            return;
        }
        Entry e = byId.get(id);
        if (e == null) {
            throw new IllegalArgumentException("no LoRA adapter with id " + id + " is loaded");
        }
        if (e.draining) {
            throw new IllegalArgumentException("LoRA adapter '" + e.spec.name() + "' is being unloaded");
        }
        e.inFlight++;
        e.failure = null; // a new request tries a failed load again
        if (slots.slotOf(id) == 0 && !host.contains(id)) {
            startLoad(e);
        }
    }

    /** The request finished or was aborted. An adapter being unloaded goes once its last request ends. */
    public synchronized void endRequest(long id) {
        Entry e = byId.get(id);
        if (id == 0 || e == null) {
            return;
        }
        if (e.inFlight == 0) {
            throw new IllegalStateException("endRequest for adapter '" + e.spec.name() + "' without a request in flight");
        }
        e.inFlight--;
        if (e.draining && e.inFlight == 0) {
            remove(e);
        }
    }

    /**
     * A sequence of adapter {@code id} wants to join the next step. {@link SlotGrant.Ready} pins the
     * slot until {@link #release}; it may load the adapter into a free or idle slot (between steps).
     */
    public synchronized SlotGrant acquire(long id) {
        if (id == 0) {
            return new SlotGrant.Ready(0);
        }
        syncDevice();
        Entry e = byId.get(id);
        if (e == null) {
            return new SlotGrant.Failed("LoRA adapter " + id + " was unloaded");
        }
        int slot = slots.slotOf(id);
        if (slot == 0 && e.failure != null) {
            return new SlotGrant.Failed(e.failure);
        }
        if (slot == 0) {
            if (!host.contains(id)) {
                startLoad(e);
            }
            Optional<LoraWeights> weights = host.get(id);
            if (weights.isEmpty()) {
                return e.failure != null ? new SlotGrant.Failed(e.failure)
                        : new SlotGrant.Wait("LoRA adapter '" + e.spec.name() + "' is loading from disk");
            }
            slot = slots.free();
            if (slot == 0) {
                slot = slots.victim(other -> byId.get(other).running == 0, other -> byId.get(other).inFlight == 0);
            }
            if (slot == 0) {
                return new SlotGrant.Wait("all " + slots.maxLoras() + " LoRA slots are in use by running sequences");
            }
            device.load(slot, weights.get());
            slots.assign(slot, id);
        }
        slots.touch(slot);
        e.running++;
        return new SlotGrant.Ready(slot);
    }

    /** A sequence that {@link #acquire}d left the running batch (finished, aborted or preempted). */
    public synchronized void release(long id) {
        Entry e = byId.get(id);
        if (id == 0 || e == null) {
            return;
        }
        if (e.running == 0) {
            throw new IllegalStateException("release for adapter '" + e.spec.name() + "' without a running sequence");
        }
        e.running--;
    }

    /**
     * Stops serving adapter {@code name}: new requests are refused at once, requests in flight finish,
     * then it leaves every tier. The stage completes when it is gone.
     */
    public synchronized CompletionStage<Void> unload(String name) {
        Entry e = byName.get(name);
        if (e == null) {
            return CompletableFuture.failedFuture(new IllegalArgumentException("no LoRA adapter named '" + name + "'"));
        }
        e.draining = true;
        if (e.inFlight == 0) {
            remove(e);
        }
        return e.drained.copy();
    }

    /**
     * Forgets every request in flight and every running sequence: the engine that counted them is gone
     * (a replica's engine restarted). Adapters being unloaded leave now; slots keep their adapters.
     */
    public synchronized void forgetRequests() {
        for (Entry e : List.copyOf(byName.values())) {
            e.inFlight = 0;
            e.running = 0;
            if (e.draining) {
                remove(e);
            }
        }
    }

    /** Frees the slots of unloaded adapters on the backend. Call between steps. */
    public synchronized void syncDevice() {
        for (int slot : pendingUnloads) {
            if (slots.owner(slot) == 0) {
                device.unload(slot);
            }
        }
        pendingUnloads.clear();
    }

    private void remove(Entry e) {
        long id = e.spec.id();
        byName.remove(e.spec.name());
        byId.remove(id);
        host.remove(id);
        int slot = slots.slotOf(id);
        if (slot > 0) {
            slots.clear(slot);
            pendingUnloads.add(slot); // NOTE: a forward pass may be running now; the backend is told between steps
        }
        e.drained.complete(null);
    }

    /** An adapter someone may soon need: in a slot, or with requests in flight. Host eviction spares these first. */
    private boolean wanted(long id) {
        Entry e = byId.get(id);
        return e != null && (e.inFlight > 0 || slots.slotOf(id) > 0);
    }

    private void startLoad(Entry e) {
        if (e.loading != null) {
            return;
        }
        CompletableFuture<LoraWeights> loading = CompletableFuture.supplyAsync(() -> loader.load(e.spec.dir()), executor);
        e.loading = loading;
        loading.whenComplete((weights, error) -> loaded(e, weights, error));
    }

    private void loaded(Entry e, LoraWeights weights, Throwable error) {
        synchronized (this) {
            e.loading = null;
            if (byId.get(e.spec.id()) == e) {
                if (error != null) {
                    Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
                    e.failure = cause.getMessage();
                } else if (!weights.fingerprint().equals(e.spec.fingerprint())) {
                    e.failure = "LoRA adapter '" + e.spec.name() + "' changed on disk since it was registered ("
                            + e.spec.dir() + "); register it again";
                } else {
                    host.put(e.spec.id(), weights, this::wanted);
                }
            }
        }
        listeners.forEach(Runnable::run);
    }
}
