package io.kvass.worker.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * What a model directory says about special tokens outside the tokenizer proper: {@code tokenizer_config.json}
 * (token strings, chat template) and the {@code eos_token_id} of {@code generation_config.json} and
 * {@code config.json}. Every file is optional.
 *
 * @param specialTokens the string-valued {@code *_token} entries of tokenizer_config.json ({@code bos_token},
 *     {@code eos_token}, {@code unk_token}, {@code pad_token}, ...), which chat templates may reference
 * @param eosTokenIds ids listed as {@code eos_token_id} (an int or a list) in generation_config.json and config.json
 * @param tokenizerConfig the parsed tokenizer_config.json, or a missing node
 */
record TokenizerConfig(Map<String, String> specialTokens, Set<Integer> eosTokenIds, JsonNode tokenizerConfig) {

    private static final ObjectMapper JSON = new ObjectMapper();

    static TokenizerConfig read(Path modelDir) {
        JsonNode tc = readJsonIfPresent(modelDir.resolve("tokenizer_config.json"));
        Map<String, String> special = new LinkedHashMap<>();
        tc.properties().forEach(e -> {
            if (e.getKey().endsWith("_token")) {
                tokenString(e.getValue()).ifPresent(s -> special.put(e.getKey(), s));
            }
        });
        Set<Integer> eos = new LinkedHashSet<>();
        for (String file : new String[] {"generation_config.json", "config.json"}) {
            JsonNode id = readJsonIfPresent(modelDir.resolve(file)).path("eos_token_id");
            if (id.isIntegralNumber()) {
                eos.add(id.intValue());
            } else if (id.isArray()) {
                id.forEach(n -> eos.add(n.intValue()));
            }
        }
        return new TokenizerConfig(Map.copyOf(special), Set.copyOf(eos), tc);
    }

    Optional<String> bosToken() {
        return Optional.ofNullable(specialTokens.get("bos_token"));
    }

    Optional<String> eosToken() {
        return Optional.ofNullable(specialTokens.get("eos_token"));
    }

    /** HF writes special tokens either as a string or as an AddedToken object {@code {"content": ...}}. */
    static Optional<String> tokenString(JsonNode node) {
        if (node.isTextual()) {
            return Optional.of(node.textValue());
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return Optional.of(node.path("content").textValue());
        }
        return Optional.empty();
    }

    static JsonNode readJsonIfPresent(Path file) {
        return Files.isRegularFile(file) ? parseJson(file, readString(file)) : MissingNode.getInstance();
    }

    static String readString(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    static JsonNode parseJson(Path file, String text) {
        try {
            return JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("corrupt JSON in " + file + ": " + e.getOriginalMessage(), e);
        }
    }
}
