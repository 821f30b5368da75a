package io.kvass.http.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.grammar.GrammarSpec;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A chat request's tools: the functions (OpenAI's {@code tools}), {@code tool_choice}, {@code parallel_tool_calls}
 * and the model's parser. {@code required} and a named function are enforced by constrained decoding, as vLLM
 * does: the output is a JSON array of {@code {"name", "parameters"}} (one item when calls may not be parallel), or
 * the named function's arguments; their schemas are the functions' {@code parameters}, so arguments always parse.
 *
 * @param functions the {@code function} objects of {@code tools}, by name, in order
 */
public record ToolCalling(Map<String, ObjectNode> functions, ToolChoice choice, boolean parallel,
                          ToolCallParser parser) {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    public ToolCalling {
        functions = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(functions));
    }

    /** Whether the output is read for calls (anything but {@code none}). */
    public boolean parsesCalls() {
        return !(choice instanceof ToolChoice.None);
    }

    /** The constraint {@code required} / named choices decode under. */
    public Optional<GrammarSpec> constraint() {
        return switch (choice) {
            case ToolChoice.None n -> Optional.empty();
            case ToolChoice.Auto a -> Optional.empty();
            case ToolChoice.Named named -> Optional.of(GrammarSpec.jsonSchema(parameters(functions.get(named.name()))
                    .toString()));
            case ToolChoice.Required r -> {
                ArrayNode options = F.arrayNode();
                functions.forEach((name, f) -> {
                    ObjectNode call = options.addObject();
                    call.put("type", "object");
                    ObjectNode props = call.putObject("properties");
                    props.putObject("name").put("const", name);
                    props.set("parameters", parameters(f));
                    call.putArray("required").add("name").add("parameters");
                    call.put("additionalProperties", false);
                });
                ObjectNode schema = F.objectNode();
                schema.put("type", "array");
                schema.putObject("items").set("anyOf", options);
                schema.put("minItems", 1);
                if (!parallel) {
                    schema.put("maxItems", 1);
                }
                yield Optional.of(GrammarSpec.jsonSchema(schema.toString()));
            }
        };
    }

    /** A function's parameters schema; none means an object of anything. */
    private static JsonNode parameters(ObjectNode function) {
        JsonNode p = function.get("parameters");
        return p == null || p.isNull() ? F.objectNode().put("type", "object") : p;
    }

    /** What the chat template sees as {@code tools}: OpenAI's tool objects as plain maps. */
    public List<Object> templateTools() {
        List<Object> out = new ArrayList<>();
        functions.values().forEach(f -> {
            ObjectNode tool = F.objectNode();
            tool.put("type", "function");
            tool.set("function", f);
            out.add(ToolCallParser.JSON.convertValue(tool, Object.class));
        });
        return out;
    }

    /** The calls in a finished completion's text. */
    public ToolCall.Parsed parse(String text) {
        return switch (choice) {
            case ToolChoice.None n -> ToolCall.Parsed.text(text);
            case ToolChoice.Auto a -> parser.parse(text);
            case ToolChoice.Named named -> new ToolCall.Parsed(Optional.empty(), List.of(ToolCall.of(named.name(),
                    text.strip())));
            case ToolChoice.Required r -> required(text);
        };
    }

    /**
     * The constrained array. Cut short by max_tokens, its complete items are still calls (each one already
     * matched its function's schema when it closed); only the unfinished last one is dropped.
     */
    private static ToolCall.Parsed required(String text) {
        List<ToolCall> calls = new ArrayList<>();
        try (com.fasterxml.jackson.core.JsonParser p = ToolCallParser.JSON.createParser(text)) {
            if (p.nextToken() == com.fasterxml.jackson.core.JsonToken.START_ARRAY) {
                while (p.nextToken() == com.fasterxml.jackson.core.JsonToken.START_OBJECT) {
                    JsonNode c = p.readValueAsTree();
                    calls.add(ToolCall.of(c.get("name").textValue(), c.get("parameters").toString()));
                }
            }
        } catch (Exception e) {
            // the unfinished tail of a truncated array
        }
        return calls.isEmpty() ? ToolCall.Parsed.text(text) : new ToolCall.Parsed(Optional.empty(), calls);
    }
}
