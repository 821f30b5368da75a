package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** response_format, structured_outputs and tools through the server, on stories260K (sampled, temperature 1). */
class StructuredOutputsApiTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<Map<String, Object>> MESSAGES = List.of(Map.of("role", "user", "content", "Once upon a time"));
    private static final Map<String, Object> SCHEMA = Map.of("type", "object",
            "properties", Map.of("city", Map.of("type", "string", "maxLength", 8),
                    "count", Map.of("type", "integer", "minimum", 1, "maximum", 9)),
            "required", List.of("city", "count"), "additionalProperties", false);
    private static final Map<String, Object> WEATHER = Map.of("type", "function", "function", Map.of(
            "name", "get_weather", "description", "Weather of a city",
            "parameters", Map.of("type", "object", "properties", Map.of("city", Map.of("type", "string", "maxLength", 6),
                    "unit", Map.of("enum", List.of("C", "F"))), "required", List.of("city", "unit"))));
    private static final Map<String, Object> TIME = Map.of("type", "function", "function", Map.of(
            "name", "get_time", "parameters", Map.of("type", "object", "properties",
                    Map.of("zone", Map.of("type", "integer", "minimum", -12, "maximum", 12)), "required", List.of("zone"))));
    private static TestServer server;
    private static Client client;

    @BeforeAll
    static void start() {
        server = TestServer.start();
        client = server.client();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static void checkDocument(String text) throws Exception {
        JsonNode doc = JSON.readTree(text);
        assertTrue(doc.get("city").isTextual() && doc.get("city").asText().length() <= 8, text);
        assertTrue(doc.get("count").isInt() && doc.get("count").asInt() >= 1 && doc.get("count").asInt() <= 9, text);
        assertEquals(2, doc.size(), text);
    }

    @Test
    void jsonSchemaOnBothEndpointsStreamedAndNot() throws Exception {
        Map<String, Object> format = Map.of("type", "json_schema", "json_schema",
                Map.of("name", "place", "schema", SCHEMA, "strict", true));
        JsonNode chat = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "response_format", format,
                "n", 8, "max_tokens", 120, "seed", 3)).json();
        for (JsonNode c : chat.path("choices")) {
            assertEquals("stop", c.path("finish_reason").asText());
            checkDocument(c.path("message").path("content").asText());
        }
        JsonNode completion = client.post("/v1/completions", Map.of("prompt", "Once", "response_format", format,
                "max_tokens", 120, "n", 4)).json();
        for (JsonNode c : completion.path("choices")) {
            checkDocument(c.path("text").asText());
        }
        StringBuilder streamed = new StringBuilder();
        for (JsonNode chunk : client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "response_format", format,
                "max_tokens", 120, "stream", true)).chunks()) {
            chunk.path("choices").forEach(c -> streamed.append(c.path("delta").path("content").asText("")));
        }
        checkDocument(streamed.toString());
    }

    @Test
    void vllmStructuredOutputsAndJsonObject() throws Exception {
        JsonNode choice = client.post("/v1/completions", Map.of("prompt", "Once", "max_tokens", 10,
                "structured_outputs", Map.of("choice", List.of("yes", "no")), "n", 6)).json();
        for (JsonNode c : choice.path("choices")) {
            assertTrue(List.of("yes", "no").contains(c.path("text").asText()), c.toString());
        }
        JsonNode regex = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 20,
                "structured_outputs", Map.of("regex", "[a-c]{2,4}-[0-9]{3}"))).json();
        assertTrue(regex.path("choices").get(0).path("message").path("content").asText().matches("[a-c]{2,4}-[0-9]{3}"),
                regex.toString());
        JsonNode object = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 300,
                "response_format", Map.of("type", "json_object"), "seed", 1)).json();
        JsonNode c = object.path("choices").get(0);
        if (c.path("finish_reason").asText().equals("stop")) {
            assertTrue(JSON.readTree(c.path("message").path("content").asText()).isObject(), c.toString());
        } else {
            assertTrue(c.path("message").path("content").asText().startsWith("{"), c.toString());
        }
    }

    @Test
    void schemasItCannotCompileAre400sNamingTheKeyword() {
        JsonNode error = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "response_format",
                Map.of("type", "json_schema", "json_schema", Map.of("name", "x", "schema",
                        Map.of("type", "integer", "multipleOf", 3))))).error(400);
        assertTrue(error.path("message").asText().contains("multipleOf"), error.toString());
        assertEquals("response_format", error.path("param").asText());
        client.post("/v1/completions", Map.of("prompt", "x", "structured_outputs", Map.of("grammar", "root ::= \"a\"")))
                .error(400);
        client.post("/v1/completions", Map.of("prompt", "x", "structured_outputs", Map.of("regex", "a(?=b)"))).error(400);
        client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "response_format", Map.of("type", "xml")))
                .error(400);
        JsonNode tool = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "tools", List.of(WEATHER),
                "tool_choice", Map.of("type", "function", "function", Map.of("name", "nope")))).error(400);
        assertTrue(tool.path("message").asText().contains("nope"), tool.toString());
    }

    @Test
    void requiredToolChoiceAlwaysYieldsValidCallsStreamedAndNot() throws Exception {
        JsonNode whole = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "tools", List.of(WEATHER, TIME),
                "tool_choice", "required", "max_tokens", 600, "n", 6, "seed", 11)).json();
        for (JsonNode c : whole.path("choices")) {
            assertEquals("tool_calls", c.path("finish_reason").asText(), c.toString());
            assertTrue(c.path("message").path("content").isNull(), c.toString());
            JsonNode calls = c.path("message").path("tool_calls");
            assertTrue(calls.size() >= 1, c.toString());
            for (JsonNode call : calls) {
                checkCall(call);
            }
        }
        List<JsonNode> deltas = new ArrayList<>();
        for (JsonNode chunk : client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "tools", List.of(WEATHER),
                "tool_choice", "required", "parallel_tool_calls", false, "max_tokens", 200, "stream", true)).chunks()) {
            chunk.path("choices").forEach(c -> deltas.add(c));
        }
        JsonNode last = deltas.getLast();
        assertEquals("tool_calls", last.path("finish_reason").asText(), last.toString());
        JsonNode calls = last.path("delta").path("tool_calls");
        assertEquals(1, calls.size(), "parallel_tool_calls false: one call");
        assertEquals(0, calls.get(0).path("index").asInt());
        checkCall(calls.get(0));
    }

    @Test
    void namedToolChoiceAndAToolResultRoundTrip() throws Exception {
        JsonNode named = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "tools", List.of(WEATHER, TIME),
                "tool_choice", Map.of("type", "function", "function", Map.of("name", "get_time")), "max_tokens", 40))
                .json().path("choices").get(0);
        assertEquals("stop", named.path("finish_reason").asText(), named.toString());
        JsonNode call = named.path("message").path("tool_calls").get(0);
        assertEquals("get_time", call.path("function").path("name").asText());
        checkCall(call);

        List<Object> conversation = new ArrayList<>(MESSAGES);
        conversation.add(Map.of("role", "assistant", "content", "", "tool_calls", List.of(Map.of("id", call.path("id").asText(),
                "type", "function", "function", Map.of("name", "get_time", "arguments",
                        call.path("function").path("arguments").asText())))));
        conversation.add(Map.of("role", "tool", "tool_call_id", call.path("id").asText(), "content", "12:00"));
        JsonNode answer = client.post("/v1/chat/completions", Map.of("messages", conversation, "tools", List.of(WEATHER, TIME),
                "tool_choice", "auto", "max_tokens", 8, "temperature", 0)).json().path("choices").get(0);
        assertEquals("length", answer.path("finish_reason").asText(), answer.toString());
        assertFalse(answer.path("message").path("content").asText().isEmpty());
    }

    private static void checkCall(JsonNode call) throws Exception {
        assertEquals("function", call.path("type").asText());
        assertTrue(call.path("id").asText().startsWith("chatcmpl-tool-"), call.toString());
        JsonNode args = JSON.readTree(call.path("function").path("arguments").asText());
        switch (call.path("function").path("name").asText()) {
            case "get_weather" -> {
                assertTrue(args.get("city").asText().length() <= 6, call.toString());
                assertTrue(List.of("C", "F").contains(args.get("unit").asText()), call.toString());
            }
            case "get_time" -> assertTrue(Math.abs(args.get("zone").asInt()) <= 12 && args.get("zone").isInt(), call.toString());
            default -> throw new AssertionError("unknown function in " + call);
        }
    }
}
