package io.kvass.worker.grammar;

import java.util.Objects;

/**
 * What a request constrains its output to, as plain data: it travels in {@code SamplingParams} through the
 * scheduler and across nodes, and each worker compiles it (once, cached) against its own vocabulary.
 *
 * @param source the JSON Schema text ({@link Kind#JSON_SCHEMA}), the regex ({@link Kind#REGEX}), the JSON array
 *               of choices ({@link Kind#CHOICE}), or empty ({@link Kind#JSON_OBJECT})
 */
public record GrammarSpec(Kind kind, String source) {

    public enum Kind {
        /** A document valid against a JSON Schema. */
        JSON_SCHEMA,
        /** Any JSON object (OpenAI's {@code json_object}). */
        JSON_OBJECT,
        /** A string matching a regular expression. */
        REGEX,
        /** Exactly one of a list of strings. */
        CHOICE
    }

    public GrammarSpec {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(source, "source");
    }

    public static GrammarSpec jsonSchema(String schemaJson) {
        return new GrammarSpec(Kind.JSON_SCHEMA, schemaJson);
    }

    public static GrammarSpec jsonObject() {
        return new GrammarSpec(Kind.JSON_OBJECT, "");
    }

    public static GrammarSpec regex(String regex) {
        return new GrammarSpec(Kind.REGEX, regex);
    }

    /** @param choicesJson a JSON array of strings */
    public static GrammarSpec choice(String choicesJson) {
        return new GrammarSpec(Kind.CHOICE, choicesJson);
    }
}
