package io.kvass.worker.lora;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The parts of a PEFT {@code adapter_config.json} that decide the math, validated. Features kvass
 * does not implement are rejected here rather than silently served wrong.
 *
 * @param layers       {@code layers_to_transform}, empty for every layer
 * @param rankPattern  per-module rank overrides, keys matched as PEFT's {@code get_pattern_key} does
 * @param alphaPattern per-module alpha overrides
 */
public record LoraConfig(int rank, double alpha, boolean useRslora, ModuleSelector targets,
                         Optional<ModuleSelector> exclude, Optional<Set<Integer>> layers,
                         Map<String, Integer> rankPattern, Map<String, Double> alphaPattern) {

    /** PEFT's shorthand for every linear layer but the output head. */
    private static final String ALL_LINEAR = "all-linear";

    /** Fields that, when set, change what the adapter computes in ways kvass does not implement. */
    private static final List<String> UNSUPPORTED_WHEN_SET = List.of("layer_replication", "alora_invocation_tokens",
            "target_parameters", "trainable_token_indices", "megatron_config");
    private static final List<String> UNSUPPORTED_WHEN_TRUE = List.of("use_qalora", "lora_bias", "fan_in_fan_out",
            "use_bdlora");

    /** Parses and validates; {@code dir} only names the adapter in errors. */
    public static LoraConfig parse(JsonNode json, Path dir) {
        if (!json.isObject()) {
            throw new AdapterLoadException(dir, "adapter_config.json is not a JSON object");
        }
        String peftType = json.path("peft_type").asText("");
        if (!peftType.equals("LORA")) {
            throw new AdapterLoadException(dir, "peft_type is '" + peftType + "'; only LORA adapters are supported");
        }
        if (json.path("use_dora").asBoolean(false)) {
            throw new AdapterLoadException(dir, "use_dora=true: DoRA adapters are not supported");
        }
        JsonNode toSave = json.path("modules_to_save");
        if (!toSave.isMissingNode() && !toSave.isNull() && !(toSave.isArray() && toSave.isEmpty())) {
            throw new AdapterLoadException(dir, "modules_to_save=" + toSave + ": adapters that replace whole modules are"
                    + " not supported");
        }
        String bias = json.path("bias").asText("none");
        if (!bias.equals("none")) {
            throw new AdapterLoadException(dir, "bias='" + bias + "': only bias='none' is supported");
        }
        for (String field : UNSUPPORTED_WHEN_SET) {
            JsonNode v = json.path(field);
            if (!v.isMissingNode() && !v.isNull() && !(v.isContainerNode() && v.isEmpty())) {
                throw new AdapterLoadException(dir, field + "=" + v + " is not supported");
            }
        }
        for (String field : UNSUPPORTED_WHEN_TRUE) {
            if (json.path(field).asBoolean(false)) {
                throw new AdapterLoadException(dir, field + "=true is not supported");
            }
        }
        int rank = positiveInt(json, "r", dir);
        JsonNode alphaNode = json.path("lora_alpha");
        if (!alphaNode.isNumber()) {
            throw new AdapterLoadException(dir, "lora_alpha is missing or not a number");
        }
        return new LoraConfig(rank, alphaNode.asDouble(), json.path("use_rslora").asBoolean(false),
                selector(json.path("target_modules"), "target_modules", dir, true).orElseThrow(),
                selector(json.path("exclude_modules"), "exclude_modules", dir, false),
                layers(json.path("layers_to_transform"), dir), rankPattern(json.path("rank_pattern"), dir),
                alphaPattern(json.path("alpha_pattern"), dir));
    }

    /** True when PEFT would wrap module {@code moduleName} (of decoder layer {@code layer}). */
    public boolean targets(String moduleName, int layer) {
        if (exclude.map(e -> e.matches(moduleName)).orElse(false)) {
            return false;
        }
        return switch (targets) {
            case ModuleSelector.Regex r -> r.matches(moduleName);
            // PEFT applies layers_to_transform to the list form only, and not to an exact full name.
            case ModuleSelector.Names n -> n.names().contains(moduleName)
                    || (n.matches(moduleName) && layers.map(l -> l.contains(layer)).orElse(true));
        };
    }

    /** The module's rank: {@code rank_pattern}'s if a key matches, else {@code r}. */
    public int rankOf(String moduleName) {
        return patternKey(rankPattern.keySet(), moduleName).map(rankPattern::get).orElse(rank);
    }

    /** {@code alpha / r}, or {@code alpha / sqrt(r)} for rsLoRA, with the module's own rank and alpha. */
    public float scaleOf(String moduleName) {
        int r = rankOf(moduleName);
        double a = patternKey(alphaPattern.keySet(), moduleName).map(alphaPattern::get).orElse(alpha);
        return (float) (useRslora ? a / Math.sqrt(r) : a / r);
    }

    /** PEFT's {@code get_pattern_key}: the first key {@code k} with {@code (^|.*\.)k$} matching the name. */
    private static Optional<String> patternKey(Set<String> keys, String moduleName) {
        return keys.stream().filter(k -> Pattern.compile("(^|.*\\.)" + k + "$").matcher(moduleName).matches()).findFirst();
    }

    private static int positiveInt(JsonNode json, String field, Path dir) {
        JsonNode v = json.path(field);
        if (!v.canConvertToExactIntegral() || v.asInt() <= 0) {
            throw new AdapterLoadException(dir, field + " is missing or not a positive integer: " + v);
        }
        return v.asInt();
    }

    private static Optional<ModuleSelector> selector(JsonNode node, String field, Path dir, boolean required) {
        try {
            if (node.isTextual()) {
                return Optional.of(node.asText().equals(ALL_LINEAR) ? allLinear() : ModuleSelector.regex(node.asText()));
            }
            if (node.isArray() && !node.isEmpty()) {
                List<String> names = new ArrayList<>();
                node.forEach(n -> names.add(n.asText()));
                return Optional.of(names.contains(ALL_LINEAR) ? allLinear() : new ModuleSelector.Names(names));
            }
        } catch (IllegalArgumentException e) {
            throw new AdapterLoadException(dir, field + ": " + e.getMessage());
        }
        if (required) {
            throw new AdapterLoadException(dir, field + " is missing or empty: " + node);
        }
        return Optional.empty();
    }

    private static ModuleSelector allLinear() {
        List<String> names = new ArrayList<>();
        for (LoraTarget t : LoraTarget.values()) {
            names.add(t.shortName());
        }
        return new ModuleSelector.Names(names);
    }

    private static Optional<Set<Integer>> layers(JsonNode node, Path dir) {
        if (node.isMissingNode() || node.isNull()) {
            return Optional.empty();
        }
        Set<Integer> layers = new TreeSet<>();
        if (node.canConvertToExactIntegral()) {
            layers.add(node.asInt());
        } else if (node.isArray()) {
            for (JsonNode n : node) {
                if (!n.canConvertToExactIntegral()) {
                    throw new AdapterLoadException(dir, "layers_to_transform holds a non-integer: " + node);
                }
                layers.add(n.asInt());
            }
        } else {
            throw new AdapterLoadException(dir, "layers_to_transform must be an integer or a list: " + node);
        }
        return layers.isEmpty() ? Optional.empty() : Optional.of(Set.copyOf(layers));
    }

    private static Map<String, Integer> rankPattern(JsonNode node, Path dir) {
        Map<String, Integer> out = new LinkedHashMap<>();
        node.properties().forEach(e -> {
            if (!e.getValue().canConvertToExactIntegral() || e.getValue().asInt() <= 0) {
                throw new AdapterLoadException(dir, "rank_pattern['" + e.getKey() + "'] is not a positive integer");
            }
            out.put(e.getKey(), e.getValue().asInt());
        });
        return java.util.Collections.unmodifiableMap(out); // NOTE: PEFT tries the keys in file order
    }

    private static Map<String, Double> alphaPattern(JsonNode node, Path dir) {
        Map<String, Double> out = new LinkedHashMap<>();
        node.properties().forEach(e -> {
            if (!e.getValue().isNumber()) {
                throw new AdapterLoadException(dir, "alpha_pattern['" + e.getKey() + "'] is not a number");
            }
            out.put(e.getKey(), e.getValue().asDouble());
        });
        return java.util.Collections.unmodifiableMap(out); // NOTE: PEFT tries the keys in file order
    }
}
