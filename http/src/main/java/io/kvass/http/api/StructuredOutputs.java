package io.kvass.http.api;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.http.ServedModel;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.grammar.GrammarException;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.grammar.TokenGrammar;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * The structured-output fields of a request, OpenAI's {@code response_format} ({@code text}, {@code json_object},
 * {@code json_schema}) and vLLM's {@code structured_outputs} ({@code json}, {@code regex}, {@code choice},
 * {@code json_object}), as one {@link GrammarSpec}. Each spec is compiled here, before the request is admitted,
 * so a schema kvass cannot compile is a 400 naming the keyword and the engine finds it in the cache.
 */
public final class StructuredOutputs {
    /** Masks computed ahead for a new grammar's first automaton states, off the step loop. */
    private static final int WARM_STATES = 64;

    private StructuredOutputs() {
    }

    /** The request's constraint, if any, from {@code response_format} or {@code structured_outputs}. */
    public static Optional<GrammarSpec> of(JsonRequest body) {
        Optional<GrammarSpec> format = body.raw("response_format").flatMap(StructuredOutputs::responseFormat);
        Optional<GrammarSpec> vllm = body.raw("structured_outputs").filter(v -> !v.isNull())
                .map(StructuredOutputs::vllm);
        if (format.isPresent() && vllm.isPresent()) {
            throw ApiError.invalid("Give either response_format or structured_outputs, not both.", "structured_outputs");
        }
        return format.or(() -> vllm);
    }

    /**
     * Compiles {@code spec} against the model's vocabulary (cached per spec) and starts computing its first masks.
     *
     * @throws ApiError 400 naming the construct that cannot be compiled
     */
    public static void compile(GrammarSpec spec, ServedModel model, String field) {
        TokenGrammar grammar;
        try {
            grammar = GrammarCompiler.of(model.tokenizer(), model.vocabSize()).compile(spec);
        } catch (GrammarException e) {
            throw ApiError.invalid("Cannot constrain the output to this " + what(spec) + ": " + e.getMessage(), field);
        }
        CompletableFuture.runAsync(() -> grammar.warm(WARM_STATES));
    }

    private static String what(GrammarSpec spec) {
        return switch (spec.kind()) {
            case JSON_SCHEMA -> "JSON schema";
            case JSON_OBJECT -> "JSON object";
            case REGEX -> "regex";
            case CHOICE -> "choice";
        };
    }

    private static Optional<GrammarSpec> responseFormat(JsonNode format) {
        if (format.isNull()) {
            return Optional.empty();
        }
        String type = format.path("type").asText("");
        return switch (type) {
            case "text" -> Optional.empty();
            case "json_object" -> Optional.of(GrammarSpec.jsonObject());
            case "json_schema" -> {
                JsonNode wrapper = format.path("json_schema");
                JsonNode schema = wrapper.path("schema");
                if (!wrapper.isObject()) {
                    throw ApiError.invalid("response_format of type json_schema needs a `json_schema` object.",
                            "response_format");
                }
                if (schema.isMissingNode() || schema.isNull()) {
                    schema = wrapper.path("json_schema"); // some clients nest the schema under this name
                }
                if (!schema.isObject() && !schema.isBoolean()) {
                    throw ApiError.invalid("response_format.json_schema needs a `schema` object.", "response_format");
                }
                yield Optional.of(GrammarSpec.jsonSchema(schema.toString()));
            }
            default -> throw ApiError.invalid("response_format.type must be one of 'text', 'json_object', "
                    + "'json_schema', got '" + type + "'.", "response_format");
        };
    }

    private static GrammarSpec vllm(JsonNode so) {
        if (!so.isObject()) {
            throw ApiError.invalid("structured_outputs must be an object.", "structured_outputs");
        }
        List<GrammarSpec> given = new ArrayList<>();
        for (var it = so.properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            JsonNode v = e.getValue();
            if (v.isNull() || (v.isBoolean() && !v.booleanValue())) {
                continue;
            }
            String field = "structured_outputs." + e.getKey();
            switch (e.getKey()) {
                case "json" -> given.add(GrammarSpec.jsonSchema(v.isTextual() ? v.textValue() : v.toString()));
                case "regex" -> given.add(GrammarSpec.regex(text(v, field)));
                case "choice" -> {
                    if (!v.isArray() || v.isEmpty()) {
                        throw ApiError.invalid(field + " must be a non-empty array of strings.", field);
                    }
                    given.add(GrammarSpec.choice(v.toString()));
                }
                case "json_object" -> given.add(GrammarSpec.jsonObject());
                case "grammar", "structural_tag" -> throw ApiError.invalid(field + " is not supported (use json, "
                        + "regex or choice).", field);
                case "disable_any_whitespace", "disable_fallback", "disable_additional_properties", "whitespace_pattern",
                     "backend" -> {
                    // Options of vLLM's backends; kvass has one backend and one JSON layout.
                }
                default -> throw ApiError.invalid("Unknown field " + field + ".", field);
            }
        }
        if (given.size() != 1) {
            throw ApiError.invalid("structured_outputs needs exactly one of json, regex, choice, json_object; got "
                    + given.size() + ".", "structured_outputs");
        }
        return given.getFirst();
    }

    private static String text(JsonNode v, String field) {
        if (!v.isTextual()) {
            throw ApiError.invalid(field + " must be a string.", field);
        }
        return v.textValue();
    }
}
