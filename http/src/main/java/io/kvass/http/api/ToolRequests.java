package io.kvass.http.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.tools.ToolCallParser;
import io.kvass.http.tools.ToolCalling;
import io.kvass.http.tools.ToolChoice;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The tool-calling fields of a chat request: {@code tools}, {@code tool_choice}, {@code parallel_tool_calls},
 * and messages as chat templates see them, with assistant {@code tool_calls} and {@code role: "tool"} results.
 */
final class ToolRequests {
    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private ToolRequests() {
    }

    /** Empty without tools (or with {@code tool_choice: "none"} and no tools). */
    static Optional<ToolCalling> of(JsonRequest body, ToolCallParser parser) {
        JsonNode tools = body.raw("tools").filter(t -> !t.isNull()).orElse(null);
        JsonNode choiceNode = body.raw("tool_choice").filter(t -> !t.isNull()).orElse(null);
        boolean parallel = body.bool("parallel_tool_calls").orElse(true);
        Map<String, ObjectNode> functions = new LinkedHashMap<>();
        if (tools != null) {
            if (!tools.isArray()) {
                throw ApiError.invalid("tools must be an array of {\"type\": \"function\", \"function\": {...}}.", "tools");
            }
            for (int i = 0; i < tools.size(); i++) {
                JsonNode t = tools.get(i);
                String where = "tools[" + i + "]";
                if (!"function".equals(t.path("type").asText()) || !t.path("function").isObject()) {
                    throw ApiError.invalid(where + " must be {\"type\": \"function\", \"function\": {...}}.", "tools");
                }
                ObjectNode f = (ObjectNode) t.get("function");
                if (!f.path("name").isTextual() || f.get("name").textValue().isEmpty()) {
                    throw ApiError.invalid(where + ".function.name must be a non-empty string.", "tools");
                }
                JsonNode params = f.get("parameters");
                if (params != null && !params.isNull() && !params.isObject()) {
                    throw ApiError.invalid(where + ".function.parameters must be a JSON Schema object.", "tools");
                }
                if (functions.put(f.get("name").textValue(), f) != null) {
                    throw ApiError.invalid("Two tools are named '" + f.get("name").textValue() + "'.", "tools");
                }
            }
        }
        ToolChoice choice = choice(choiceNode, functions);
        if (functions.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(new ToolCalling(functions, choice, parallel, parser));
    }

    private static ToolChoice choice(JsonNode node, Map<String, ObjectNode> functions) {
        if (node == null) {
            return functions.isEmpty() ? new ToolChoice.None() : new ToolChoice.Auto();
        }
        if (node.isTextual()) {
            ToolChoice choice = switch (node.textValue()) {
                case "none" -> new ToolChoice.None();
                case "auto" -> new ToolChoice.Auto();
                case "required" -> new ToolChoice.Required();
                default -> throw ApiError.invalid("tool_choice must be 'none', 'auto', 'required' or "
                        + "{\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice");
            };
            if (choice instanceof ToolChoice.Required && functions.isEmpty()) {
                throw ApiError.invalid("tool_choice 'required' needs `tools`.", "tool_choice");
            }
            return choice;
        }
        JsonNode name = node.path("function").path("name");
        if (!"function".equals(node.path("type").asText()) || !name.isTextual()) {
            throw ApiError.invalid("tool_choice must be 'none', 'auto', 'required' or "
                    + "{\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice");
        }
        if (!functions.containsKey(name.textValue())) {
            throw ApiError.invalid("tool_choice names function '" + name.textValue() + "', which is not in `tools`.",
                    "tool_choice");
        }
        return new ToolChoice.Named(name.textValue());
    }

    /** The conversation as maps for the chat template; tool calls' arguments become objects, as vLLM passes them. */
    static List<Map<String, Object>> messages(JsonRequest body) {
        JsonNode messages = body.raw("messages").orElseThrow(() -> ApiError.invalid("`messages` is required.", "messages"));
        if (!messages.isArray() || messages.isEmpty()) {
            throw ApiError.invalid("`messages` must be a non-empty array of messages.", "messages");
        }
        List<Map<String, Object>> out = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            JsonNode m = messages.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject()) {
                throw ApiError.invalid(where + " must be an object with `role` and `content`.", where);
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual() || !ROLES.contains(role.textValue())) {
                throw ApiError.invalid(where + ".role must be one of " + ROLES + ".", where + ".role");
            }
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", role.textValue());
            map.put("content", RequestParser.content(m.get("content"), where + ".content"));
            JsonNode calls = m.get("tool_calls");
            if (calls != null && !calls.isNull()) {
                map.put("tool_calls", toolCalls(calls, where + ".tool_calls"));
            }
            for (String key : List.of("tool_call_id", "name")) {
                if (m.path(key).isTextual()) {
                    map.put(key, m.get(key).textValue());
                }
            }
            out.add(map);
        }
        return out;
    }

    private static List<Object> toolCalls(JsonNode calls, String where) {
        if (!calls.isArray()) {
            throw ApiError.invalid(where + " must be an array.", where);
        }
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
            JsonNode c = calls.get(i);
            JsonNode f = c.path("function");
            if (!f.path("name").isTextual()) {
                throw ApiError.invalid(where + "[" + i + "].function.name must be a string.", where + "[" + i + "]");
            }
            Map<String, Object> function = new LinkedHashMap<>();
            function.put("name", f.get("name").textValue());
            JsonNode args = f.path("arguments");
            Object arguments = args.isTextual() ? parsedOrText(args.textValue())
                    : ToolCallParser.JSON.convertValue(args, Object.class);
            function.put("arguments", arguments);
            Map<String, Object> call = new LinkedHashMap<>();
            call.put("id", c.path("id").asText(""));
            call.put("type", "function");
            call.put("function", function);
            out.add(call);
        }
        return out;
    }

    private static Object parsedOrText(String arguments) {
        try {
            return ToolCallParser.JSON.readValue(arguments, Object.class);
        } catch (Exception e) {
            return arguments;
        }
    }
}
