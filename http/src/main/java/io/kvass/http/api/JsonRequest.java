package io.kvass.http.api;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A JSON request body with typed, strict field access: a field of the wrong type is a 400 that names
 * it, {@code null} counts as absent (OpenAI clients send explicit nulls), unknown fields are refused.
 */
public final class JsonRequest {
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    static final int MAX_NESTING = 64;

    static {
        MAPPER.getFactory().setStreamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(MAX_NESTING)
                .build());
    }

    private final ObjectNode node;

    private JsonRequest(ObjectNode node) {
        this.node = node;
    }

    public static JsonRequest parse(byte[] body) {
        JsonNode tree;
        try {
            tree = MAPPER.readTree(body);
        } catch (JacksonException e) {
            throw ApiError.invalid(JsonErrors.describe(e));
        } catch (java.io.IOException e) {
            throw ApiError.invalid("The request body could not be read: " + e.getMessage());
        }
        if (tree == null || !tree.isObject()) {
            throw ApiError.invalid("The request body must be a JSON object.");
        }
        return new JsonRequest((ObjectNode) tree);
    }

    static JsonRequest of(ObjectNode node) {
        return new JsonRequest(node);
    }

    /** Refuses fields outside {@code known}, as OpenAI does. */
    public void allowOnly(Set<String> known) {
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!known.contains(f)) {
                throw ApiError.invalid("Unrecognized request argument supplied: " + f, f);
            }
        }
    }

    public boolean has(String field) {
        JsonNode v = node.get(field);
        return v != null && !v.isNull();
    }

    /** The raw value, empty when absent or null. */
    public Optional<JsonNode> raw(String field) {
        return has(field) ? Optional.of(node.get(field)) : Optional.empty();
    }

    public Optional<String> string(String field) {
        return raw(field).map(v -> {
            if (!v.isTextual()) {
                throw wrongType(field, "a string", v);
            }
            return v.textValue();
        });
    }

    public Optional<Boolean> bool(String field) {
        return raw(field).map(v -> {
            if (!v.isBoolean()) {
                throw wrongType(field, "a boolean", v);
            }
            return v.booleanValue();
        });
    }

    public Optional<Integer> integer(String field) {
        return raw(field).map(v -> (int) JsonIntegers.exact(field, v, Integer.MIN_VALUE, Integer.MAX_VALUE));
    }

    public Optional<Long> int64(String field) {
        return raw(field).map(v -> JsonIntegers.exact(field, v, Long.MIN_VALUE, Long.MAX_VALUE));
    }

    /** A finite number (a float: 1e39 or more is out of range, not infinity). */
    public Optional<Float> number(String field) {
        return raw(field).map(v -> {
            if (!v.isNumber()) {
                throw wrongType(field, "a number", v);
            }
            float f = v.floatValue();
            if (!Float.isFinite(f)) {
                throw ApiError.invalid("Invalid value for '" + field + "': " + v + " is out of range.", field);
            }
            return f;
        });
    }

    /** A string or an array of strings (OpenAI's {@code stop}). */
    public List<String> stringOrList(String field) {
        Optional<JsonNode> raw = raw(field);
        if (raw.isEmpty()) {
            return List.of();
        }
        JsonNode v = raw.get();
        if (v.isTextual()) {
            return List.of(v.textValue());
        }
        if (!v.isArray()) {
            throw wrongType(field, "a string or an array of strings", v);
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : v) {
            if (!e.isTextual()) {
                throw wrongType(field, "a string or an array of strings", v);
            }
            out.add(e.textValue());
        }
        return out;
    }

    public List<Integer> intList(String field) {
        Optional<JsonNode> raw = raw(field);
        if (raw.isEmpty()) {
            return List.of();
        }
        if (!raw.get().isArray()) {
            throw wrongType(field, "an array of integers", raw.get());
        }
        List<Integer> out = new ArrayList<>();
        for (JsonNode e : raw.get()) {
            out.add((int) JsonIntegers.exact(field, e, Integer.MIN_VALUE, Integer.MAX_VALUE));
        }
        return out;
    }

    public Optional<JsonRequest> object(String field) {
        return raw(field).map(v -> {
            if (!v.isObject()) {
                throw wrongType(field, "an object", v);
            }
            return new JsonRequest((ObjectNode) v);
        });
    }

    static ApiError wrongType(String field, String expected, JsonNode got) {
        return ApiError.invalid("Invalid type for '" + field + "': expected " + expected + ", but got "
                + describe(got) + " instead.", field);
    }

    private static String describe(JsonNode v) {
        return switch (v.getNodeType()) {
            case STRING -> "a string";
            case NUMBER -> v.isIntegralNumber() ? "an integer" : "a decimal number";
            case BOOLEAN -> "a boolean";
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            default -> "null";
        };
    }
}
