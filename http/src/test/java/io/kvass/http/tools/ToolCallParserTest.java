package io.kvass.http.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.tokenizer.ChatTemplate;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class ToolCallParserTest {

    @Test
    void hermesReadsQwenStyleCallsAndKeepsTheTextBefore() {
        ToolCall.Parsed p = ToolCallParser.of("hermes", Optional.empty()).parse("Let me check.\n<tool_call>\n"
                + "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n"
                + "{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>");
        assertEquals(Optional.of("Let me check.\n"), p.content());
        assertEquals(List.of("get_weather", "get_time"), p.calls().stream().map(ToolCall::name).toList());
        assertEquals("{\"city\":\"Paris\"}", p.calls().getFirst().arguments());
        ToolCall.Parsed broken = ToolCallParser.of("hermes", Optional.empty()).parse("<tool_call>{\"name\": ");
        assertTrue(broken.calls().isEmpty());
        assertEquals(Optional.of("<tool_call>{\"name\": "), broken.content());
    }

    @Test
    void llama3JsonAndMistral() {
        ToolCall.Parsed llama = ToolCallParser.of("llama3_json", Optional.empty()).parse(
                "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"name\": \"b\", \"parameters\": {}}");
        assertEquals(List.of("a", "b"), llama.calls().stream().map(ToolCall::name).toList());
        assertEquals("{\"x\":1}", llama.calls().getFirst().arguments());
        assertTrue(ToolCallParser.of("llama3_json", Optional.empty()).parse("Hello {there}").calls().isEmpty());
        ToolCall.Parsed mistral = ToolCallParser.of("mistral", Optional.empty()).parse(
                "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": \"s\"}}]");
        assertEquals(Optional.empty(), mistral.content());
        assertEquals("f", mistral.calls().getFirst().name());
        assertTrue(ToolCallParser.of("mistral", Optional.empty()).needsSpecialTokens());
    }

    @Test
    void autoPicksTheParserFromTheTemplate() {
        assertEquals("mistral", ToolCallParser.of("auto", Optional.of(ChatTemplate.of("{{ '[TOOL_CALLS]' }}", Map.of()))).name());
        assertEquals("llama3_json", ToolCallParser.of("auto", Optional.of(ChatTemplate.of("{{ '<|python_tag|>' }}",
                Map.of()))).name());
        assertEquals("hermes", ToolCallParser.of("auto", Optional.empty()).name());
    }

    @Test
    void templatesSeeToolsAndToolMessages() {
        // The tool parts of Qwen2.5's template, as Hugging Face ships it.
        ChatTemplate qwen = ChatTemplate.of("""
                {%- if tools %}<|im_start|>system
                # Tools
                <tools>{%- for tool in tools %}
                {{ tool | tojson }}{%- endfor %}
                </tools><|im_end|>
                {% endif %}
                {%- for message in messages %}
                {%- if message.role == "assistant" and message.tool_calls %}<|im_start|>assistant
                {%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
                <tool_call>
                {"name": "{{ tool_call.name }}", "arguments": {{ tool_call.arguments | tojson }}}
                </tool_call>{%- endfor %}<|im_end|>
                {% elif message.role == "tool" %}<|im_start|>user
                <tool_response>
                {{ message.content }}
                </tool_response><|im_end|>
                {% else %}<|im_start|>{{ message.role }}
                {{ message.content }}<|im_end|>
                {% endif %}{%- endfor %}""", Map.of());
        List<Map<String, Object>> messages = List.of(
                Map.of("role", "user", "content", "Weather?"),
                Map.of("role", "assistant", "content", "", "tool_calls", List.of(Map.of("id", "c1", "type", "function",
                        "function", Map.of("name", "get_weather", "arguments", Map.of("city", "Paris"))))),
                Map.of("role", "tool", "tool_call_id", "c1", "content", "sunny"));
        String rendered = qwen.renderMessages(messages, false, Map.of("tools", List.of(Map.of("type", "function",
                "function", Map.of("name", "get_weather")))));
        assertTrue(rendered.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}")
                || rendered.contains("\"name\":\"get_weather\"") || rendered.contains("\"name\": \"get_weather\""), rendered);
        assertTrue(rendered.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\""), rendered);
        assertTrue(rendered.contains("<tool_response>\nsunny\n</tool_response>"), rendered);
    }
}
