package io.kvass.http.tools;

/** OpenAI's {@code tool_choice}. */
public sealed interface ToolChoice {
    /** The model answers in text; tools are only described. */
    record None() implements ToolChoice {
    }

    /** The model decides; its tool-call syntax is parsed out of the text. */
    record Auto() implements ToolChoice {
    }

    /** At least one call, enforced by constrained decoding. */
    record Required() implements ToolChoice {
    }

    /** A call of this function, its arguments constrained to its parameters' schema. */
    record Named(String name) implements ToolChoice {
    }
}
