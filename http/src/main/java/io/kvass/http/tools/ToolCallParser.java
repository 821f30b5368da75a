package io.kvass.http.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.tokenizer.ChatTemplate;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a model family's tool-call syntax back out of its text, as vLLM's parsers of the same names do:
 * {@code hermes} ({@code <tool_call>{"name", "arguments"}</tool_call>}: Qwen2.5/3, Hermes), {@code llama3_json}
 * ({@code {"name", "parameters"}}, optionally after {@code <|python_tag|>}: Llama 3.1+), {@code mistral}
 * ({@code [TOOL_CALLS][{"name", "arguments"}, ...]}). Text that does not hold a well-formed call stays content.
 */
public sealed interface ToolCallParser {
    ObjectMapper JSON = new ObjectMapper();
    List<String> NAMES = List.of("hermes", "llama3_json", "mistral");

    String name();

    ToolCall.Parsed parse(String text);

    /** Whether the model's special tokens must stay in the text for this parser (mistral's {@code [TOOL_CALLS]}). */
    default boolean needsSpecialTokens() {
        return false;
    }

    /**
     * The parser called {@code name}, or for {@code auto} the one the chat template's syntax suggests (hermes when
     * it says nothing).
     *
     * @throws IllegalArgumentException for another name
     */
    static ToolCallParser of(String name, Optional<ChatTemplate> template) {
        return switch (name) {
            case "hermes" -> new Hermes();
            case "llama3_json" -> new Llama3Json();
            case "mistral" -> new Mistral();
            case "auto" -> {
                String source = template.map(ChatTemplate::source).orElse("");
                yield source.contains("[TOOL_CALLS]") ? new Mistral()
                        : source.contains("<|python_tag|>") || source.contains("ipython") ? new Llama3Json()
                        : new Hermes();
            }
            default -> throw new IllegalArgumentException("unknown tool-call parser '" + name + "' (one of auto, "
                    + String.join(", ", NAMES) + ")");
        };
    }

    /** {@code {"name": ..., "arguments"|"parameters": {...}}} as a call, or empty. */
    private static Optional<ToolCall> call(JsonNode node) {
        if (node == null || !node.isObject() || !node.path("name").isTextual()) {
            return Optional.empty();
        }
        JsonNode args = node.has("arguments") ? node.get("arguments") : node.path("parameters");
        if (args.isMissingNode() || args.isNull()) {
            args = JSON.createObjectNode();
        }
        return Optional.of(ToolCall.of(node.get("name").textValue(), args.isTextual() ? args.textValue() : args.toString()));
    }

    private static Optional<JsonNode> json(String text) {
        try {
            return Optional.of(JSON.readTree(text));
        } catch (Exception e) {
            return Optional.empty();
        }
    }

    private static Optional<String> content(String text) {
        return text.isBlank() ? Optional.empty() : Optional.of(text);
    }

    record Hermes() implements ToolCallParser {
        private static final Pattern CALL = Pattern.compile("<tool_call>(.*?)</tool_call>|<tool_call>(.*)$", Pattern.DOTALL);

        @Override
        public String name() {
            return "hermes";
        }

        @Override
        public ToolCall.Parsed parse(String text) {
            int start = text.indexOf("<tool_call>");
            if (start < 0) {
                return ToolCall.Parsed.text(text);
            }
            List<ToolCall> calls = new ArrayList<>();
            Matcher m = CALL.matcher(text);
            while (m.find()) {
                String body = (m.group(1) != null ? m.group(1) : m.group(2)).strip();
                Optional<ToolCall> call = json(body).flatMap(ToolCallParser::call);
                if (call.isEmpty()) {
                    return ToolCall.Parsed.text(text);
                }
                calls.add(call.get());
            }
            return new ToolCall.Parsed(content(text.substring(0, start)), calls);
        }
    }

    record Llama3Json() implements ToolCallParser {
        @Override
        public String name() {
            return "llama3_json";
        }

        @Override
        public ToolCall.Parsed parse(String text) {
            String body = text.strip();
            if (body.startsWith("<|python_tag|>")) {
                body = body.substring("<|python_tag|>".length()).strip();
            }
            if (!body.startsWith("{")) {
                return ToolCall.Parsed.text(text);
            }
            List<ToolCall> calls = new ArrayList<>();
            for (String part : body.split(";\\s*(?=\\{)")) {
                Optional<ToolCall> call = json(part).flatMap(ToolCallParser::call);
                if (call.isEmpty()) {
                    return ToolCall.Parsed.text(text);
                }
                calls.add(call.get());
            }
            return new ToolCall.Parsed(Optional.empty(), calls);
        }
    }

    record Mistral() implements ToolCallParser {
        @Override
        public String name() {
            return "mistral";
        }

        @Override
        public boolean needsSpecialTokens() {
            return true;
        }

        @Override
        public ToolCall.Parsed parse(String text) {
            int at = text.indexOf("[TOOL_CALLS]");
            if (at < 0) {
                return ToolCall.Parsed.text(text);
            }
            Optional<JsonNode> array = json(text.substring(at + "[TOOL_CALLS]".length()).strip());
            if (array.isEmpty()) {
                return ToolCall.Parsed.text(text);
            }
            List<ToolCall> calls = new ArrayList<>();
            JsonNode node = array.get();
            for (JsonNode c : node.isArray() ? node : JSON.createArrayNode().add(node)) {
                Optional<ToolCall> call = call(c);
                if (call.isEmpty()) {
                    return ToolCall.Parsed.text(text);
                }
                calls.add(call.get());
            }
            return new ToolCall.Parsed(content(text.substring(0, at)), calls);
        }
    }
}
