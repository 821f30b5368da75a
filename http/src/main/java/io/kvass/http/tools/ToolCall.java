package io.kvass.http.tools;

import java.util.Optional;
import java.util.UUID;

/**
 * One function call as the API returns it.
 *
 * @param arguments the arguments as a JSON text (OpenAI's {@code function.arguments} is a string)
 */
public record ToolCall(String id, String name, String arguments) {

    public static ToolCall of(String name, String arguments) {
        return new ToolCall("chatcmpl-tool-" + UUID.randomUUID().toString().replace("-", ""), name, arguments);
    }

    /** A completion's text split into what the user reads and the calls the model made. */
    public record Parsed(Optional<String> content, java.util.List<ToolCall> calls) {
        public Parsed {
            calls = java.util.List.copyOf(calls);
        }

        public static Parsed text(String text) {
            return new Parsed(Optional.of(text), java.util.List.of());
        }
    }
}
