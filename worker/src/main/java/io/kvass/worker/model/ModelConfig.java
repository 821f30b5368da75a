package io.kvass.worker.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.OptionalInt;
import java.util.Set;

/** The shape of a Llama-family decoder, read from a Hugging Face {@code config.json} or a llama2.c header. */
public record ModelConfig(
        Architecture architecture,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int vocabSize,
        float rmsNormEps,
        RopeScaling rope,
        int maxPositions,
        boolean tiedEmbeddings,
        boolean qkvBias,
        OptionalInt bosTokenId,
        Set<Integer> eosTokenIds) {

    public ModelConfig {
        if (hiddenSize <= 0 || numLayers <= 0 || numHeads <= 0 || numKvHeads <= 0 || vocabSize <= 0
                || intermediateSize <= 0 || headDim <= 0) {
            throw new ModelLoadException("config has a non-positive size: " + this);
        }
        if (numHeads % numKvHeads != 0) {
            throw new ModelLoadException("num_attention_heads " + numHeads
                    + " is not a multiple of num_key_value_heads " + numKvHeads);
        }
        if (headDim % 2 != 0) {
            throw new ModelLoadException("head_dim " + headDim + " must be even for rotary embeddings");
        }
        eosTokenIds = Set.copyOf(eosTokenIds);
    }

    public int qDim() {
        return numHeads * headDim;
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    /** Reads {@code dir/config.json}. */
    public static ModelConfig load(Path dir) {
        Path file = dir.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            throw new ModelLoadException("no config.json in " + dir);
        }
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new ModelLoadException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        return parse(json, file.toString());
    }

    static ModelConfig parse(JsonNode json, String where) {
        JsonNode archs = json.path("architectures");
        if (!archs.isArray() || archs.isEmpty()) {
            throw new ModelLoadException(where + " has no 'architectures'");
        }
        Architecture arch = Architecture.ofHf(archs.get(0).asText());
        if (json.path("mlp_bias").asBoolean(false)) {
            throw new ModelLoadException(where + ": mlp_bias=true is not supported");
        }
        int hidden = requireInt(json, "hidden_size", where);
        int heads = requireInt(json, "num_attention_heads", where);
        int headDim = json.hasNonNull("head_dim") ? json.get("head_dim").asInt() : hidden / heads;
        int maxPositions = json.path("max_position_embeddings").asInt(2048);
        JsonNode slidingWindow = json.path("sliding_window");
        boolean slidingUsed = arch == Architecture.QWEN2 ? json.path("use_sliding_window").asBoolean(false) : true;
        if (slidingUsed && slidingWindow.isNumber() && slidingWindow.asInt() < maxPositions) {
            // Without sliding-window attention the model is exact up to the window; cap the context there.
            maxPositions = slidingWindow.asInt();
        }
        return new ModelConfig(
                arch,
                hidden,
                requireInt(json, "intermediate_size", where),
                requireInt(json, "num_hidden_layers", where),
                heads,
                json.path("num_key_value_heads").asInt(heads),
                headDim,
                requireInt(json, "vocab_size", where),
                (float) json.path("rms_norm_eps").asDouble(1e-6),
                rope(json, where),
                maxPositions,
                json.path("tie_word_embeddings").asBoolean(false),
                arch.alwaysQkvBias() || json.path("attention_bias").asBoolean(false),
                json.path("bos_token_id").isInt() ? OptionalInt.of(json.get("bos_token_id").asInt()) : OptionalInt.empty(),
                tokenIds(json.path("eos_token_id")));
    }

    /** Both styles: {@code rope_theta} + {@code rope_scaling} (older) and {@code rope_parameters} (transformers 5). */
    private static RopeScaling rope(JsonNode json, String where) {
        JsonNode params = json.path("rope_parameters");
        JsonNode scaling = params.isObject() ? params : json.path("rope_scaling");
        double theta = params.path("rope_theta").asDouble(json.path("rope_theta").asDouble(10000.0));
        if (!scaling.isObject()) {
            return new RopeScaling("default", theta, 1, 0, 0, 0);
        }
        String type = scaling.path("rope_type").asText(scaling.path("type").asText("default"));
        try {
            return new RopeScaling(type, theta,
                    scaling.path("factor").asDouble(1.0),
                    scaling.path("low_freq_factor").asDouble(1.0),
                    scaling.path("high_freq_factor").asDouble(4.0),
                    scaling.path("original_max_position_embeddings").asInt(8192));
        } catch (ModelLoadException e) {
            throw new ModelLoadException(where + ": " + e.getMessage());
        }
    }

    static Set<Integer> tokenIds(JsonNode node) {
        Set<Integer> ids = new LinkedHashSet<>();
        if (node.isInt()) {
            ids.add(node.asInt());
        } else if (node.isArray()) {
            node.forEach(n -> ids.add(n.asInt()));
        }
        return ids;
    }

    private static int requireInt(JsonNode json, String field, String where) {
        if (!json.path(field).canConvertToInt()) {
            throw new ModelLoadException(where + " lacks integer field '" + field + "'");
        }
        return json.get(field).asInt();
    }
}
