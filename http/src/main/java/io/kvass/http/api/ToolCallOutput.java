package io.kvass.http.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.tools.ToolCall;
import io.kvass.http.tools.ToolCalling;
import io.kvass.http.tools.ToolChoice;

/** Writes a finished choice's tool calls into its message (or delta), OpenAI's shape. */
final class ToolCallOutput {
    private ToolCallOutput() {
    }

    /**
     * Replaces the message's content with what the parser leaves of it and adds {@code tool_calls}; a choice that
     * stopped with calls finishes with {@code "tool_calls"} (a named function's with {@code "stop"}, as OpenAI's).
     *
     * @param streamed a delta: calls carry their {@code index}, and no content means no {@code content} field
     */
    static void put(ToolCalling tools, String text, ObjectNode message, ObjectNode choice, boolean streamed) {
        ToolCall.Parsed parsed = tools.parse(text);
        if (parsed.calls().isEmpty()) {
            return;
        }
        if (parsed.content().isPresent()) {
            message.put("content", parsed.content().get());
        } else if (streamed) {
            message.remove("content");
        } else {
            message.putNull("content");
        }
        ArrayNode calls = message.putArray("tool_calls");
        for (int i = 0; i < parsed.calls().size(); i++) {
            ToolCall call = parsed.calls().get(i);
            ObjectNode c = calls.addObject();
            if (streamed) {
                c.put("index", i);
            }
            c.put("id", call.id());
            c.put("type", "function");
            c.putObject("function").put("name", call.name()).put("arguments", call.arguments());
        }
        if ("stop".equals(choice.path("finish_reason").asText()) && !(tools.choice() instanceof ToolChoice.Named)) {
            choice.put("finish_reason", "tool_calls");
        }
    }
}
