package io.kvass.cluster.node;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigValue;
import io.kvass.cluster.node.ServeSettings.SettingsException;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Multi-LoRA serving ({@code kvass.lora}, vLLM's flags): whether it is on, the adapters served from the
 * start, the backend slots and host cache, and where adapters may be loaded from at runtime.
 *
 * @param enabled      {@code --enable-lora}, implied by {@code --lora-modules}
 * @param modules      {@code --lora-modules}: registered at every start, so they survive restarts
 * @param maxLoras     {@code --max-loras}: adapters one step can use (backend slots)
 * @param maxCpuLoras  {@code --max-cpu-loras}: adapters kept decoded in host memory
 * @param maxRank      {@code --max-lora-rank}
 * @param allowedRoots {@code kvass.lora.allowed-roots}: with the modules' directories, where
 *                     {@code /v1/load_lora_adapter} may read adapters
 */
public record LoraSettings(boolean enabled, List<Module> modules, int maxLoras, int maxCpuLoras, int maxRank,
                           List<Path> allowedRoots) {

    /** One {@code --lora-modules} entry: {@code name=DIR} or {@code {"name", "path", "base_model_name"}}. */
    public record Module(String name, Path path, Optional<String> baseModelName) {
    }

    public static final LoraSettings DISABLED = new LoraSettings(false, List.of(), 1, 1, 16, List.of());

    public LoraSettings {
        modules = List.copyOf(modules);
        allowedRoots = List.copyOf(allowedRoots);
    }

    /** The backend's share: slots and rank, or none when LoRA is off. */
    public LoraCapacity capacity() {
        return enabled ? new LoraCapacity(maxLoras, maxRank) : LoraCapacity.NONE;
    }

    /** The adapter manager's options; the modules' directories are allowed roots. */
    public LoraOptions options() {
        List<Path> roots = Stream.concat(modules.stream().map(Module::path), allowedRoots.stream()).toList();
        return new LoraOptions(capacity(), maxCpuLoras, roots);
    }

    /** Reads and checks {@code kvass.lora} ({@code c} is the {@code kvass} section). */
    static LoraSettings read(Config c, String servedModelName) {
        List<Module> modules = modules(c, servedModelName);
        ServeSettings.Reader r = new ServeSettings.Reader(c);
        // NOTE: vLLM refuses --lora-modules without --enable-lora; asking for adapters is asking for LoRA.
        boolean enabled = r.get("lora.enabled", c::getBoolean) || !modules.isEmpty();
        int maxLoras = r.atLeast("lora.max-loras", 1);
        int maxRank = r.atLeast("lora.max-lora-rank", 1);
        int maxCpuLoras = r.atLeast("lora.max-cpu-loras", 0);
        if (maxCpuLoras == 0) {
            maxCpuLoras = maxLoras;
        } else if (maxCpuLoras < maxLoras) {
            throw new SettingsException("lora.max-cpu-loras", "must be at least max-loras (" + maxLoras + "), got "
                    + maxCpuLoras);
        }
        List<Path> roots = new ArrayList<>();
        for (String root : new ServeSettings.Reader(c).get("lora.allowed-roots", c::getStringList)) {
            roots.add(path("lora.allowed-roots", root));
        }
        return new LoraSettings(enabled, modules, maxLoras, maxCpuLoras, maxRank, roots);
    }

    private static List<Module> modules(Config c, String servedModelName) {
        List<Module> modules = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (ConfigValue v : new ServeSettings.Reader(c).get("lora.modules", c::getList)) {
            Module m = switch (v.valueType()) {
                case STRING -> parse((String) v.unwrapped());
                case OBJECT -> fromObject((ConfigObject) v);
                default -> throw new SettingsException("lora.modules", "entries are \"name=DIR\", vLLM's JSON "
                        + "{\"name\": .., \"path\": ..} or objects; got " + v.render());
            };
            if (!names.add(m.name())) {
                throw new SettingsException("lora.modules", "adapter '" + m.name() + "' is given twice");
            }
            if (m.name().equals(servedModelName)) {
                throw new SettingsException("lora.modules", "adapter '" + m.name() + "' has the served model's name");
            }
            if (m.baseModelName().filter(b -> !b.equals(servedModelName)).isPresent()) {
                throw new SettingsException("lora.modules", "adapter '" + m.name() + "' names base model '"
                        + m.baseModelName().get() + "', but this server serves '" + servedModelName + "'");
            }
            if (!Files.isDirectory(m.path())) {
                throw new SettingsException("lora.modules", "adapter '" + m.name() + "': not a directory: " + m.path());
            }
            modules.add(m);
        }
        return modules;
    }

    /** {@code name=DIR}, or vLLM's JSON form {@code {"name": .., "path": .., "base_model_name": ..}}. */
    static Module parse(String entry) {
        String s = entry.trim();
        if (s.startsWith("{")) {
            JsonNode json;
            try {
                json = new ObjectMapper().readTree(s);
            } catch (IOException e) {
                throw new SettingsException("lora.modules", "not valid JSON: " + entry);
            }
            Optional<String> base = Optional.ofNullable(json.get("base_model_name")).filter(JsonNode::isTextual)
                    .map(JsonNode::asText);
            return module(text(json, "name"), text(json, "path"), base);
        }
        int eq = s.indexOf('=');
        if (eq <= 0 || eq == s.length() - 1) {
            throw new SettingsException("lora.modules", "expected name=DIR or a JSON object, got '" + entry + "'");
        }
        return module(s.substring(0, eq).trim(), s.substring(eq + 1).trim(), Optional.empty());
    }

    private static String text(JsonNode json, String field) {
        JsonNode v = json.get(field);
        if (v == null || !v.isTextual()) {
            throw new SettingsException("lora.modules", "a JSON entry needs a string \"" + field + "\": " + json);
        }
        return v.asText();
    }

    private static Module fromObject(ConfigObject o) {
        Config c = o.toConfig();
        ServeSettings.Reader r = new ServeSettings.Reader(c);
        Optional<String> base = Stream.of("base_model_name", "base-model-name").filter(c::hasPath).findFirst()
                .map(k -> r.get(k, c::getString));
        if (!c.hasPath("name") || !c.hasPath("path")) {
            throw new SettingsException("lora.modules", "an entry needs name and path: " + o.render());
        }
        return module(r.get("name", c::getString), r.get("path", c::getString), base);
    }

    private static Module module(String name, String path, Optional<String> base) {
        if (name.isBlank()) {
            throw new SettingsException("lora.modules", "an adapter needs a name");
        }
        return new Module(name, path("lora.modules", path), base);
    }

    private static Path path(String key, String p) {
        try {
            return Path.of(p);
        } catch (InvalidPathException e) {
            throw new SettingsException(key, "not a valid path: " + p);
        }
    }
}
