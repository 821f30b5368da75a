package io.kvass.cluster.node;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigRenderOptions;
import io.kvass.cluster.placement.Deployment;
import io.kvass.cluster.placement.DeviceKind;
import io.kvass.http.HttpSettings;
import io.kvass.http.guard.ConnectionLimits;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.router.RouterSettings;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.cpu.CpuWeightFormat;
import io.kvass.worker.cpu.CpuWeightMemory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Everything {@code kvass serve} needs, read once from the {@code kvass} section of the merged
 * configuration and checked: a bad value is a {@link SettingsException} naming its key.
 *
 * @param replica         the first deployment's replica options (with one model: the model's)
 * @param deployments     what the cluster serves: {@code kvass.deployments}, or the top-level model
 * @param config          the whole configuration, for the ActorSystem
 */
public record ServeSettings(ReplicaOptions replica, String servedModelName, EngineSettings engine, LoraSettings lora,
                            HttpSettings http, ClusterSettings cluster, List<Deployment> deployments, Config config) {

    /** {@code kvass.router}: the policy and the routing knobs ({@code max-waiting} is the gateway's http one). */
    public record RouterConfig(boolean prefixAware, RouterSettings settings) {
    }

    /** Reads {@code kvass.router} of the node's configuration. */
    public RouterConfig router() {
        Reader r = new Reader(config.getConfig("kvass"));
        String policy = r.string("router.policy");
        if (!policy.equals("prefix-aware") && !policy.equals("round-robin")) {
            throw new SettingsException("router.policy", "must be prefix-aware or round-robin, got '" + policy + "'");
        }
        Duration stale = r.duration("router.stale-after");
        try {
            return new RouterConfig(policy.equals("prefix-aware"), new RouterSettings(
                    io.kvass.scheduler.engine.Engine.REPORT_INTERVAL.compareTo(stale) <= 0
                            ? io.kvass.scheduler.engine.Engine.REPORT_INTERVAL : stale, stale,
                    r.atLeast("router.max-queued-per-replica", 1), http.maxWaiting(),
                    r.get("router.prefix-weight", r.c::getDouble), r.get("router.adapter-weight", r.c::getDouble),
                    r.get("router.free-kv-weight", r.c::getDouble), r.get("router.queue-weight", r.c::getDouble),
                    r.atLeast("router.balance-abs-threshold", 0), r.get("router.balance-rel-threshold", r.c::getDouble)));
        } catch (IllegalArgumentException e) {
            throw new SettingsException("router", e.getMessage());
        }
    }

    /** One replica's settings: the top-level {@code kvass} keys with a deployment's own keys over them. */
    public record ReplicaSettings(ReplicaOptions replica, String servedModelName, EngineSettings engine,
                                  LoraSettings lora) {
    }

    /** The {@code kvass} keys that configure a replica (what a deployment may set and carries to other nodes). */
    static final List<String> REPLICA_KEYS = List.of("model", "served-model-name", "device", "threads", "cpu-weights",
            "cpu-weight-format", "max-model-len", "max-num-seqs", "max-num-batched-tokens", "block-size",
            "kv-cache-memory", "gpu-memory-utilization", "enable-prefix-caching", "scheduling-policy", "lora");

    /** The scheduler's knobs besides the replica's own (max_model_len is known once the model is loaded). */
    public record EngineSettings(int maxNumSeqs, int maxNumBatchedTokens, SchedulingPolicy policy,
                                 boolean enablePrefixCaching) {
    }

    /**
     * Where this node's remoting listens, which cluster it joins (no seeds: a cluster of its own), what it does
     * there and what it offers.
     *
     * @param roles          {@code gateway} (HTTP API, router) and/or {@code worker} (hosts replicas)
     * @param minNrOfMembers the cluster starts serving once this many nodes are up
     * @param devices        a CPU node's budget of replica slots (a GPU node: its GPUs, one replica slot each)
     * @param managementPort Pekko Management's HTTP port ({@code /cluster/members}, {@code /ready},
     *                       {@code /alive}); 0 = off
     * @param adminToken     {@code --admin-token}: the bearer token of {@code /admin/*} (else the API key guards it)
     */
    public record ClusterSettings(String hostname, int port, List<String> seedNodes, Set<String> roles,
                                  int minNrOfMembers, int devices, int managementPort, Optional<String> adminToken) {
        public boolean isGateway() {
            return roles.contains(GATEWAY);
        }

        public boolean isWorker() {
            return roles.contains(WORKER);
        }
    }

    public static final String GATEWAY = "gateway";
    public static final String WORKER = "worker";

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
        return new ServeSettings(s.replica, s.servedModelName, s.engine, s.lora, s.http, s.cluster, s.deployments,
                system);
    }

    /** Reads and checks {@code kvass.*} of an already resolved configuration. */
    public static ServeSettings from(Config config) {
        Config kvass = config.getConfig("kvass");
        List<Deployment> deployments = deployments(kvass);
        ReplicaSettings first = replicaSettings(kvass, deployments.getFirst());
        Reader r = new Reader(kvass);
        return new ServeSettings(first.replica(), first.servedModelName(), first.engine(), first.lora(), http(r),
                cluster(r), deployments, config);
    }

    /** A deployment's replica settings on a node whose own {@code kvass} section is {@code nodeKvass}. */
    public static ReplicaSettings replicaSettings(Config nodeKvass, Deployment d) {
        Config merged;
        try {
            merged = ConfigFactory.parseString(d.settings()).withFallback(nodeKvass).resolve();
        } catch (ConfigException e) {
            throw new SettingsException("deployments", d.name() + ": " + e.getMessage());
        }
        return replicaSettings(merged);
    }

    /** Reads and checks the replica keys of {@code c} (a {@code kvass} section). */
    static ReplicaSettings replicaSettings(Config c) {
        Reader r = new Reader(c);
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
        return new ReplicaSettings(replica, name, engine, LoraSettings.read(r.c, name));
    }

    /**
     * {@code kvass.deployments}, each entry's keys over the top-level ones; none: the top-level model with
     * {@code kvass.replicas} replicas. Each is checked here, so a bad one stops the start, and carries its replica
     * keys as text, so a node that did not read this file can host it.
     */
    static List<Deployment> deployments(Config kvass) {
        Reader r = new Reader(kvass);
        List<Config> entries = new ArrayList<>();
        if (kvass.hasPath("deployments") && !kvass.getList("deployments").isEmpty()) {
            entries.addAll(r.get("deployments", kvass::getConfigList));
        } else {
            entries.add(ConfigFactory.parseMap(Map.of("replicas", r.atLeast("replicas", 0))));
        }
        List<Deployment> out = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (Config entry : entries) {
            Config merged = entry.withFallback(kvass);
            Reader e = new Reader(merged);
            ReplicaSettings replica = replicaSettings(merged);
            int replicas = e.atLeast("replicas", 0);
            int perReplica = entry.hasPath("tensor-parallel-size") ? e.atLeast("tensor-parallel-size", 1)
                    : e.atLeast("devices-per-replica", 1);
            if (!names.add(replica.servedModelName())) {
                throw new SettingsException("deployments", "two deployments serve '" + replica.servedModelName() + "'");
            }
            Map<String, Object> keys = new LinkedHashMap<>();
            for (String k : REPLICA_KEYS) {
                if (merged.hasPath(k)) {
                    keys.put(k, merged.getValue(k).unwrapped());
                }
            }
            keys.put("served-model-name", replica.servedModelName());
            keys.put("model", replica.replica().modelDir().toAbsolutePath().normalize().toString());
            String settings = ConfigFactory.parseMap(keys).root().render(ConfigRenderOptions.concise());
            DeviceKind device = replica.replica().device() == ReplicaOptions.Device.CUDA ? DeviceKind.CUDA
                    : DeviceKind.CPU;
            out.add(new Deployment(replica.servedModelName(), replicas, perReplica, device, settings));
        }
        return List.copyOf(out);
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
                r.atLeast("http.max-connections-per-client", 1)), toolCallParser(r));
    }

    private static java.time.Duration positive(Reader r, String key) {
        java.time.Duration d = r.duration(key);
        if (d.isZero() || d.isNegative()) {
            throw new SettingsException(key, "must be positive");
        }
        return d;
    }

    private static String toolCallParser(Reader r) {
        String parser = r.string("http.tool-call-parser");
        if (!parser.equals("auto") && !io.kvass.http.tools.ToolCallParser.NAMES.contains(parser)) {
            throw new SettingsException("http.tool-call-parser", "must be auto or one of "
                    + io.kvass.http.tools.ToolCallParser.NAMES + ", got " + parser);
        }
        return parser;
    }

    private static ClusterSettings cluster(Reader r) {
        int port = r.atLeast("cluster.port", 0);
        if (port > 65535) {
            throw new SettingsException("cluster.port", "must be in 0..65535, got " + port);
        }
        Set<String> roles = new TreeSet<>();
        for (String role : r.get("roles", r.c::getStringList)) {
            String name = role.trim().toLowerCase(Locale.ROOT);
            if (!name.equals(GATEWAY) && !name.equals(WORKER)) {
                throw new SettingsException("roles", "roles are gateway and worker, got '" + role + "'");
            }
            roles.add(name);
        }
        if (roles.isEmpty()) {
            throw new SettingsException("roles", "a node needs at least one role: gateway, worker");
        }
        int management = r.atLeast("cluster.management-port", 0);
        if (management > 65535) {
            throw new SettingsException("cluster.management-port", "must be in 0..65535, got " + management);
        }
        return new ClusterSettings(r.string("cluster.hostname"), port, r.get("cluster.seed-nodes", r.c::getStringList),
                Set.copyOf(roles), r.atLeast("cluster.min-nr-of-members", 1), r.atLeast("node.devices", 1), management,
                Optional.of(r.string("admin-token")).filter(t -> !t.isEmpty()));
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
