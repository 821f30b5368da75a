package io.kvass.cluster.node;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.kvass.http.HttpSettings;
import io.kvass.http.guard.ConnectionLimits;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.cpu.CpuWeightFormat;
import io.kvass.worker.cpu.CpuWeightMemory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Everything {@code kvass serve} needs, read once from the {@code kvass} section of the merged
 * configuration and checked: a bad value is a {@link SettingsException} naming its key.
 *
 * @param config the whole configuration, for the ActorSystem
 */
public record ServeSettings(ReplicaOptions replica, String servedModelName, EngineSettings engine, LoraSettings lora,
                            HttpSettings http, ClusterSettings cluster, Config config) {

    /** The scheduler's knobs besides the replica's own (max_model_len is known once the model is loaded). */
    public record EngineSettings(int maxNumSeqs, int maxNumBatchedTokens, SchedulingPolicy policy,
                                 boolean enablePrefixCaching) {
    }

    /** Where this node's remoting listens and which cluster it joins (no seeds: a cluster of its own). */
    public record ClusterSettings(String hostname, int port, List<String> seedNodes) {
    }

    /** A configuration value kvass cannot use; {@code key} is its path under {@code kvass}. */
    public static final class SettingsException extends IllegalArgumentException {
        private final String key;

        public SettingsException(String key, String message) {
            super(message);
            this.key = key;
        }

        public String key() {
            return key;
        }
    }

    /**
     * Layers {@code user} (flags over a --config file) over system properties, application.conf and
     * the reference configuration; reads {@code kvass.*}; and derives the ActorSystem's settings.
     */
    public static ServeSettings load(Config user) {
        Config base = ConfigFactory.defaultApplication().withFallback(ConfigFactory.defaultReference());
        Config merged;
        try {
            merged = user.withFallback(ConfigFactory.defaultOverrides()).withFallback(base).resolve();
        } catch (ConfigException e) {
            throw new SettingsException("", e.getMessage());
        }
        ServeSettings s = from(merged);
        Config system = user.withFallback(ConfigFactory.defaultOverrides()).withFallback(NodeConfig.derived(s))
                .withFallback(base).resolve();
        return new ServeSettings(s.replica, s.servedModelName, s.engine, s.lora, s.http, s.cluster, system);
    }

    /** Reads and checks {@code kvass.*} of an already resolved configuration. */
    public static ServeSettings from(Config config) {
        Reader r = new Reader(config.getConfig("kvass"));
        String model = r.string("model");
        if (model.isBlank()) {
            throw new SettingsException("model", "a model directory is required");
        }
        Path modelDir = Path.of(model);
        if (!Files.isDirectory(modelDir)) {
            throw new SettingsException("model", "not a directory: " + model);
        }
        ReplicaOptions.Device device = r.parsed("device", ReplicaOptions.Device::parse);
        double gpuMemoryUtilization = ReplicaOptions.DEFAULT_GPU_MEMORY_UTILIZATION;
        if (r.c.hasPath("gpu-memory-utilization")) {
            double f = r.get("gpu-memory-utilization", r.c::getDouble);
            gpuMemoryUtilization = f;
            if (!(f > 0 && f <= 1)) {
                throw new SettingsException("gpu-memory-utilization", "must be in (0, 1], got " + f);
            }
            if (device == ReplicaOptions.Device.CPU) {
                throw new SettingsException("gpu-memory-utilization",
                        "applies to --device cuda only; the CPU backend sizes its KV cache with kv-cache-memory");
            }
        }
        CpuWeightMemory cpuWeights = r.parsed("cpu-weights", CpuWeightMemory::parse);
        CpuWeightFormat cpuWeightFormat = r.parsed("cpu-weight-format", CpuWeightFormat::parse);
        int maxNumSeqs = r.atLeast("max-num-seqs", 1);
        int threads = r.atLeast("threads", 0);
        ReplicaOptions replica;
        try {
            replica = new ReplicaOptions(modelDir, device, r.atLeast("block-size", 1),
                    r.get("kv-cache-memory", r.c::getBytes), r.atLeast("max-model-len", 0), maxNumSeqs,
                    threads == 0 ? Runtime.getRuntime().availableProcessors() : threads, gpuMemoryUtilization,
                    cpuWeights, cpuWeightFormat);
        } catch (IllegalArgumentException e) {
            throw new SettingsException(e.getMessage().startsWith("block size") ? "block-size" : "kv-cache-memory",
                    e.getMessage());
        }
        String name = r.string("served-model-name");
        if (name.isBlank()) {
            name = modelDir.toAbsolutePath().normalize().getFileName().toString();
        }
        SchedulingPolicy policy = r.get("scheduling-policy", k -> {
            String p = r.c.getString(k).toUpperCase(Locale.ROOT);
            try {
                return SchedulingPolicy.valueOf(p);
            } catch (IllegalArgumentException e) {
                throw new SettingsException(k, "must be fcfs or priority, got '" + r.c.getString(k) + "'");
            }
        });
        EngineSettings engine = new EngineSettings(maxNumSeqs, r.atLeast("max-num-batched-tokens", 1), policy,
                r.get("enable-prefix-caching", r.c::getBoolean));
        return new ServeSettings(replica, name, engine, LoraSettings.read(r.c, name), http(r), cluster(r), config);
    }

    private static HttpSettings http(Reader r) {
        int port = r.atLeast("http.port", 0);
        if (port > 65535) {
            throw new SettingsException("http.port", "must be in 0..65535, got " + port);
        }
        long body = r.get("http.max-body-size", r.c::getBytes);
        if (body < 1) {
            throw new SettingsException("http.max-body-size", "must be positive");
        }
        return new HttpSettings(r.string("http.host"), port, Optional.of(r.string("http.api-key")), body,
                r.atLeast("http.max-waiting", 1), r.duration("http.request-timeout"), r.duration("http.idle-timeout"),
                r.duration("http.drain-timeout"), new ConnectionLimits(positive(r, "http.header-timeout"),
                positive(r, "http.body-timeout"), r.atLeast("http.max-connections", 1),
                r.atLeast("http.max-connections-per-client", 1)));
    }

    private static java.time.Duration positive(Reader r, String key) {
        java.time.Duration d = r.duration(key);
        if (d.isZero() || d.isNegative()) {
            throw new SettingsException(key, "must be positive");
        }
        return d;
    }

    private static ClusterSettings cluster(Reader r) {
        int port = r.atLeast("cluster.port", 0);
        if (port > 65535) {
            throw new SettingsException("cluster.port", "must be in 0..65535, got " + port);
        }
        return new ClusterSettings(r.string("cluster.hostname"), port, r.get("cluster.seed-nodes", r.c::getStringList));
    }

    /** Typed access whose failures name the key (shared with {@link LoraSettings}). */
    record Reader(Config c) {
        <T> T get(String key, java.util.function.Function<String, T> read) {
            try {
                return read.apply(key);
            } catch (ConfigException.Missing e) {
                throw new SettingsException(key, "is missing");
            } catch (ConfigException e) {
                throw new SettingsException(key, "has a bad value: " + e.getMessage());
            }
        }

        String string(String key) {
            return get(key, c::getString);
        }

        /** The key's string through {@code parse}, whose IllegalArgumentException names the problem. */
        <T> T parsed(String key, java.util.function.Function<String, T> parse) {
            String value = string(key);
            try {
                return parse.apply(value);
            } catch (IllegalArgumentException e) {
                throw new SettingsException(key, e.getMessage());
            }
        }

        int atLeast(String key, int min) {
            int v = get(key, c::getInt);
            if (v < min) {
                throw new SettingsException(key, "must be at least " + min + ", got " + v);
            }
            return v;
        }

        Duration duration(String key) {
            Duration d = get(key, c::getDuration);
            if (d.isNegative()) {
                throw new SettingsException(key, "must not be negative");
            }
            return d;
        }
    }
}
