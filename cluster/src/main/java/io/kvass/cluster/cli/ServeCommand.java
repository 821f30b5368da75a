package io.kvass.cluster.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import io.kvass.cluster.node.ServeSettings;
import io.kvass.cluster.node.ServingNode;
import java.io.File;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code kvass serve}: the OpenAI-compatible server. Flags set keys of the {@code kvass} configuration
 * ({@code conf/reference.conf} holds the defaults); {@code --config FILE.conf} is layered between
 * the two. Unknown flags and bad values are refused with a message that names them.
 */
public final class ServeCommand {

    private enum Kind {
        STRING, INT, BYTES, FRACTION
    }

    private record Flag(String name, String key, Kind kind) {
    }

    private static final List<Flag> FLAGS = List.of(
            new Flag("model", "model", Kind.STRING),
            new Flag("served-model-name", "served-model-name", Kind.STRING),
            new Flag("host", "http.host", Kind.STRING),
            new Flag("port", "http.port", Kind.INT),
            new Flag("api-key", "http.api-key", Kind.STRING),
            new Flag("max-waiting", "http.max-waiting", Kind.INT),
            new Flag("max-body-size", "http.max-body-size", Kind.BYTES),
            new Flag("tool-call-parser", "http.tool-call-parser", Kind.STRING),
            new Flag("header-timeout", "http.header-timeout", Kind.STRING),
            new Flag("body-timeout", "http.body-timeout", Kind.STRING),
            new Flag("max-connections", "http.max-connections", Kind.INT),
            new Flag("max-connections-per-client", "http.max-connections-per-client", Kind.INT),
            new Flag("device", "device", Kind.STRING),
            new Flag("threads", "threads", Kind.INT),
            new Flag("cpu-weights", "cpu-weights", Kind.STRING),
            new Flag("cpu-weight-format", "cpu-weight-format", Kind.STRING),
            new Flag("max-model-len", "max-model-len", Kind.INT),
            new Flag("max-num-seqs", "max-num-seqs", Kind.INT),
            new Flag("max-num-batched-tokens", "max-num-batched-tokens", Kind.INT),
            new Flag("block-size", "block-size", Kind.INT),
            new Flag("kv-cache-memory", "kv-cache-memory", Kind.BYTES),
            new Flag("gpu-memory-utilization", "gpu-memory-utilization", Kind.FRACTION),
            new Flag("scheduling-policy", "scheduling-policy", Kind.STRING),
            new Flag("max-loras", "lora.max-loras", Kind.INT),
            new Flag("max-cpu-loras", "lora.max-cpu-loras", Kind.INT),
            new Flag("max-lora-rank", "lora.max-lora-rank", Kind.INT),
            new Flag("cluster-host", "cluster.hostname", Kind.STRING),
            new Flag("cluster-port", "cluster.port", Kind.INT),
            new Flag("min-nr-of-members", "cluster.min-nr-of-members", Kind.INT),
            new Flag("management-port", "cluster.management-port", Kind.INT),
            new Flag("devices", "node.devices", Kind.INT),
            new Flag("replicas", "replicas", Kind.INT),
            new Flag("admin-token", "admin-token", Kind.STRING));
    static final Set<String> VALUED = FLAGS.stream().map(Flag::name)
            .collect(Collectors.collectingAndThen(Collectors.toSet(), s -> {
                s.add("config");
                s.add("seed-node");
                s.add("roles");
                return Set.copyOf(s);
            }));
    static final Set<String> SWITCHES = Set.of("no-enable-prefix-caching", "enable-lora");
    /** Flags that take one or more values ({@code --lora-modules a=DIR b=DIR}), as vLLM's. */
    static final Set<String> MULTI = Set.of("lora-modules", "lora-allowed-roots");

    private ServeCommand() {
    }

    /**
     * Starts the node and returns when it has shut down (SIGTERM, SIGINT). A node the split-brain resolver downs
     * (the minority side of a partition) exits its JVM: it must not keep serving replicas that now run elsewhere.
     */
    public static void run(String[] args) {
        ServeSettings settings = settings(args, ConfigFactory.parseString("pekko.coordinated-shutdown.exit-jvm = on"));
        ServingNode node;
        try {
            node = ServingNode.start(settings);
        } catch (IllegalStateException e) {
            throw new CliException(e.getMessage());
        }
        node.awaitTermination();
    }

    /** The flags over the --config file over the defaults, checked. */
    public static ServeSettings settings(String[] args) {
        return settings(args, ConfigFactory.empty());
    }

    private static ServeSettings settings(String[] args, Config process) {
        CliArgs a = CliArgs.parse(args, 1, VALUED, SWITCHES, MULTI);
        if (a.has("kv-cache-memory") && a.has("gpu-memory-utilization")) {
            throw new CliException("give --kv-cache-memory or --gpu-memory-utilization, not both");
        }
        Map<String, Object> values = new HashMap<>();
        for (Flag f : FLAGS) {
            a.get(f.name()).ifPresent(v -> values.put("kvass." + f.key(), parse(f, v)));
        }
        if (!a.all("seed-node").isEmpty()) {
            values.put("kvass.cluster.seed-nodes", a.all("seed-node"));
        }
        a.get("roles").ifPresent(roles -> values.put("kvass.roles", java.util.Arrays.stream(roles.split(","))
                .map(String::trim).filter(r -> !r.isEmpty()).toList()));
        if (a.has("no-enable-prefix-caching")) {
            values.put("kvass.enable-prefix-caching", false);
        }
        if (a.has("enable-lora")) {
            values.put("kvass.lora.enabled", true);
        }
        if (a.has("lora-modules")) {
            values.put("kvass.lora.modules", a.all("lora-modules"));
        }
        if (a.has("lora-allowed-roots")) {
            values.put("kvass.lora.allowed-roots", a.all("lora-allowed-roots"));
        }
        Config user = ConfigFactory.parseMap(values, "command-line flags");
        if (a.has("config")) {
            user = user.withFallback(configFile(a.require("config")));
        }
        user = user.withFallback(process);
        try {
            return ServeSettings.load(user);
        } catch (ServeSettings.SettingsException e) {
            throw new CliException(describe(a, e));
        }
    }

    private static Object parse(Flag f, String v) {
        return switch (f.kind()) {
            case STRING -> v;
            case INT -> {
                try {
                    yield Integer.parseInt(v.trim());
                } catch (NumberFormatException e) {
                    throw new CliException("--" + f.name() + " expects an integer, got '" + v + "'");
                }
            }
            case BYTES -> {
                long bytes = CliArgs.parseLong(f.name(), v);
                if (bytes <= 0) {
                    throw new CliException("--" + f.name() + " must be positive, got '" + v + "'");
                }
                yield bytes;
            }
            case FRACTION -> {
                double d;
                try {
                    d = Double.parseDouble(v.trim());
                } catch (NumberFormatException e) {
                    throw new CliException("--" + f.name() + " expects a number, got '" + v + "'");
                }
                if (!(d > 0 && d <= 1)) {
                    throw new CliException("--" + f.name() + " must be in (0, 1], got " + v);
                }
                yield d;
            }
        };
    }

    private static Config configFile(String path) {
        File file = new File(path);
        if (!file.isFile()) {
            throw new CliException("--config: no such file: " + path);
        }
        try {
            return ConfigFactory.parseFile(file, ConfigParseOptions.defaults().setAllowMissing(false));
        } catch (ConfigException e) {
            throw new CliException("--config " + path + ": " + e.getMessage());
        }
    }

    /** Names the flag that set the bad key, or the key when it came from a file. */
    private static String describe(CliArgs a, ServeSettings.SettingsException e) {
        if (e.key().isEmpty()) {
            return e.getMessage();
        }
        for (Flag f : FLAGS) {
            if (f.key().equals(e.key()) && a.has(f.name())) {
                return "--" + f.name() + ": " + e.getMessage();
            }
        }
        if (e.key().equals("model")) {
            return "--model: " + e.getMessage();
        }
        if (e.key().equals("lora.modules") && a.has("lora-modules")) {
            return "--lora-modules: " + e.getMessage();
        }
        return "kvass." + e.key() + ": " + e.getMessage();
    }
}
