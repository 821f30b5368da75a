package io.kvass.http;

import io.kvass.scheduler.engine.AdapterSource;
import io.kvass.worker.lora.AdapterSpec;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.ModelConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;

/**
 * The LoRA adapters a gateway knows for one base model: names clients may ask for, each with the id and
 * directory a replica needs to load it. Registering reads and checks the files here (so a bad adapter is
 * refused with its reason at once); replicas load an adapter when a request first needs it. This is the
 * gateway's side of adapters controlled by messages: it never touches a replica's slots.
 */
public final class AdapterCatalog {
    private final LoraLoader loader;
    private final Executor io;
    private final int maxLoras;
    private final Map<String, AdapterSpec> byName = new ConcurrentHashMap<>();

    public AdapterCatalog(ModelConfig base, LoraOptions options, Executor io) {
        this.loader = new LoraLoader(base, options.device().maxRank(), options.allowedRoots());
        this.io = io;
        this.maxLoras = options.device().maxLoras();
    }

    /** Backend slots per replica (vLLM's {@code max_loras}), for {@code vllm:lora_requests_info}. */
    public int maxLoras() {
        return maxLoras;
    }

    /**
     * Reads and checks the adapter in {@code dir} on the calling thread and registers it as {@code name}.
     * The same name and directory again is a no-op.
     *
     * @throws io.kvass.worker.lora.AdapterLoadException when it cannot be served (the message says why)
     * @throws IllegalArgumentException when the name is taken by another directory
     */
    public AdapterSpec register(String name, Path dir) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("an adapter needs a name");
        }
        AdapterSpec existing = byName.get(name);
        if (existing != null) {
            return same(existing, dir);
        }
        LoraWeights weights = loader.load(dir);
        AdapterSpec spec = new AdapterSpec(name, AdapterSpec.idOf(name, weights.fingerprint()), weights.dir(),
                weights.fingerprint());
        AdapterSpec raced = byName.putIfAbsent(name, spec);
        return raced == null ? spec : same(raced, dir);
    }

    /** {@link #register} on the I/O executor. */
    public CompletionStage<AdapterSpec> registerAsync(String name, Path dir) {
        return CompletableFuture.supplyAsync(() -> register(name, dir), io);
    }

    private AdapterSpec same(AdapterSpec existing, Path dir) {
        if (!loader.resolve(dir).equals(existing.dir())) {
            throw new IllegalArgumentException("adapter name '" + existing.name() + "' is already registered for "
                    + existing.dir());
        }
        return existing;
    }

    public Optional<AdapterSpec> find(String name) {
        return Optional.ofNullable(byName.get(name));
    }

    /** Forgets the adapter; true when it was known. Replicas hear of it separately. */
    public boolean remove(String name) {
        return byName.remove(name) != null;
    }

    public List<AdapterSpec> all() {
        return byName.values().stream().sorted(java.util.Comparator.comparing(AdapterSpec::name)).toList();
    }

    /** What a request tells a replica about its adapter. */
    public static AdapterSource source(AdapterSpec spec) {
        return new AdapterSource(spec.name(), spec.id(), spec.dir().toString());
    }
}
