package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Expected strings are written out from reading each template's source, under Hugging Face's Jinja settings
 * ({@code trim_blocks}, {@code lstrip_blocks}).
 */
class ChatTemplateTest {

    private static final List<ChatMessage> CONVERSATION = List.of(
            new ChatMessage("system", "You are a helpful assistant."),
            new ChatMessage("user", "What is 2+2?"),
            new ChatMessage("assistant", "  4  "),
            new ChatMessage("user", "And 3+3?"));

    private static ChatTemplate load(String dir) {
        return ChatTemplate.load(Fixtures.path(dir)).orElseThrow();
    }

    @Test
    void llama3() {
        // Each message: header, content | trim, <|eot_id|>; BOS before the first; this (original Llama 3)
        // template injects no system message or date and appends the assistant header unconditionally.
        String expected = "<|begin_of_text|>"
                + "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n";
        ChatTemplate template = load("tokenizers/llama3");
        assertEquals(expected, template.render(CONVERSATION, true));
        assertEquals(expected, template.render(CONVERSATION, false), "the template ignores add_generation_prompt");
    }

    @Test
    void qwen3BasicConversation() {
        // No tools: system first; user turns verbatim; an assistant turn before the last user query keeps
        // its content as is (no trim); then the generation prompt.
        String expected = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                + "<|im_start|>assistant\n  4  <|im_end|>\n"
                + "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                + "<|im_start|>assistant\n";
        assertEquals(expected, load("tokenizers/qwen3").render(CONVERSATION, true));
    }

    @Test
    void qwen3ThinkingUsesPythonStringMethodsAndNamespace() {
        ChatTemplate qwen3 = load("tokenizers/qwen3");
        List<ChatMessage> answered = List.of(
                new ChatMessage("user", "What is 2+2?"),
                new ChatMessage("assistant", "<think>\nLet me add.\n</think>\n\n4"));
        // The assistant turn after the last user query keeps its reasoning, re-wrapped.
        assertEquals("<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                        + "<|im_start|>assistant\n<think>\nLet me add.\n</think>\n\n4<|im_end|>\n",
                qwen3.render(answered, false));
        // Before the last user query the reasoning is dropped; enable_thinking=false adds an empty think block.
        List<ChatMessage> followUp = List.of(answered.get(0), answered.get(1), new ChatMessage("user", "And 3+3?"));
        assertEquals("<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                        + "<|im_start|>assistant\n4<|im_end|>\n"
                        + "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                        + "<|im_start|>assistant\n<think>\n\n</think>\n\n",
                qwen3.render(followUp, true, Map.of("enable_thinking", false)));
    }

    @Test
    void stories260KMinimalTemplate() {
        // "{{ bos_token }}{% for message in messages %}{{ message['content'] | trim }}{% if not loop.last %}\n
        // {% endif %}{% endfor %}": with HF's trim_blocks the newline right after "{% if not loop.last %}" is
        // removed, so HF (and so kvass) joins the contents with nothing.
        ChatTemplate template = load("models/stories260K");
        assertEquals("<s>Once upon a timethere was", template.render(
                List.of(new ChatMessage("user", " Once upon a time "), new ChatMessage("user", "there was")), true));
        assertEquals("<s>Hello", template.render(List.of(new ChatMessage("user", "Hello")), true));
    }

    @Test
    void raiseExceptionCarriesTheTemplatesMessage() {
        ChatTemplate template = ChatTemplate.of("{% for m in messages %}{% if m.role == 'tool' %}"
                + "{{ raise_exception('Tool messages are not supported: ' + m.content) }}{% endif %}{{ m.content }}"
                + "{% endfor %}", Map.of());
        assertEquals("hi", template.render(List.of(new ChatMessage("user", "hi")), false));
        var e = assertThrows(ChatTemplateException.class,
                () -> template.render(List.of(new ChatMessage("tool", "x")), false));
        assertEquals("Tool messages are not supported: x", e.getMessage());
    }

    @Test
    void strftimeNowReadsTheGivenClock() {
        Clock clock = Clock.fixed(Instant.parse("2024-07-26T10:00:00Z"), ZoneOffset.UTC);
        ChatTemplate template = ChatTemplate.of(
                "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
                        + "Today Date: {{ date_string }}", Map.of()).withClock(clock);
        assertEquals("Today Date: 26 Jul 2024", template.render(List.of(), true));
        assertEquals("Today Date: 1 Jan 2000", template.render(List.of(), true, Map.of("date_string", "1 Jan 2000")));
    }

    @Test
    void jinja2Semantics() {
        ChatTemplate template = ChatTemplate.of("""
                {%- set ns = namespace(count=messages|length - 1, seen=false) %}
                {%- for m in messages[::-1] %}
                    {{- m.role ~ ':' ~ m.content.split('|')[-1].strip() ~ ';' }}
                    {%- set ns.seen = true %}
                {%- endfor %}
                {{- ns.count }} {{ ns.seen }} {{ 'a' + ' b ' | trim + 'c' }} {{ {'k': [1, 'é"']} | tojson }}
                {{- ' ' ~ ('x' if add_generation_prompt else 'y') ~ ' ' ~ (tools is defined) ~ bos_token }}
                """, Map.of("bos_token", "<s>"));
        assertEquals("assistant:b;user:a;1 true abc {\"k\": [1, \"é\\\"\"]} x false<s>", template.render(
                List.of(new ChatMessage("user", "x| a "), new ChatMessage("assistant", "b")), true).strip());
    }

    @Test
    void jinja2WhitespaceAndLoopFilters() {
        // Expected values are what Jinja2 3.1 gives with trim_blocks and lstrip_blocks.
        Map<String, String> cases = new java.util.LinkedHashMap<>();
        cases.put("{% for m in messages %}{{ m.role }} {% endfor %}", "user assistant user ");
        cases.put("a {% if true %}b{% endif %}c\n", "a bc");
        cases.put("x\n  {% if true %}\n  y\n  {% endif %}\nz", "x\n  y\nz");
        cases.put("a  {# c #}\nb\n  {# d #}\ne", "a  b\ne");
        cases.put("  {%+ if true +%}\nq{% endif %}", "  \nq");
        cases.put("{% if true -%}\n   {% endif %}[{%- if true %} a {% endif -%} ]", "[ a ]");
        cases.put("{%- for m in messages if m.role != 'user' %}{{ loop.index }}{{ m.role }}"
                + "{% if loop.last %}!{% endif %}{% endfor %}", "1assistant!");
        cases.put("{% for k, v in {'a': 1, 'b': 2}.items() if k != 'a' %}{{ k }}={{ v }}{% endfor %}", "b=2");
        List<ChatMessage> messages = List.of(new ChatMessage("user", "u1"), new ChatMessage("assistant", "a"),
                new ChatMessage("user", "u2"));
        cases.forEach((source, expected) ->
                assertEquals(expected, ChatTemplate.of(source, Map.of()).render(messages, false), source));
    }

    @Test
    void unknownFiltersAndTestsFailAtLoad() {
        var filter = assertThrows(ChatTemplateException.class, () -> ChatTemplate.of("{{ x | frobnicate }}", Map.of()));
        assertTrue(filter.getMessage().contains("filter 'frobnicate'"), filter.getMessage());
        var test = assertThrows(ChatTemplateException.class, () -> ChatTemplate.of("{{ x is frob }}", Map.of()));
        assertTrue(test.getMessage().contains("test 'frob'"), test.getMessage());
        // Pipes inside string literals are text, not filters.
        ChatTemplate.of("{{ '<|im_start|>' + x }}", Map.of());
        var fn = assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.of("{{ frob(1) }}", Map.of()).render(List.of(), false));
        assertTrue(fn.getMessage().contains("frob"), fn.getMessage());
    }

    @Test
    void namedTemplatesAndTokenObjects(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>",
                 "chat_template": [{"name": "tool_use", "template": "tools"},
                                   {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}]}
                """);
        assertEquals("<B>hi<E>", ChatTemplate.load(dir).orElseThrow().render(List.of(new ChatMessage("user", "hi")), false));

        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"chat_template": [{"name": "tool_use", "template": "tools"}]}
                """);
        var e = assertThrows(ChatTemplateException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().contains("default") && e.getMessage().contains(dir.toString()), e.getMessage());

        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"<E>\"}");
        assertEquals(Optional.empty(), ChatTemplate.load(dir));
        Files.writeString(dir.resolve("chat_template.jinja"), "{{ messages | length }}{{ eos_token }}");
        assertEquals("0<E>", ChatTemplate.load(dir).orElseThrow().render(List.of(), false));
    }
}
