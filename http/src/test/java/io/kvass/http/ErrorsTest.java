package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpRequest;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Bad input gets an OpenAI-shaped 4xx naming the problem, and the server keeps serving. */
class ErrorsTest {
    private static final long BODY_LIMIT = 64 * 1024;
    private static TestServer server;
    private static Client client;

    @BeforeAll
    static void start() {
        server = TestServer.start(HttpSettings.local().withLimits(BODY_LIMIT, 10_000), 16, java.time.Duration.ZERO);
        client = server.client();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @CsvSource(delimiter = '|', textBlock = """
            /v1/completions      | {"prompt": "hi", "max_tokens": 4                       | 
            /v1/completions      | [1, 2, 3]                                              | 
            /v1/completions      | {"prompt": "hi", "temperature": -1}                    | temperature
            /v1/completions      | {"prompt": "hi", "temperature": "hot"}                 | temperature
            /v1/completions      | {"prompt": "hi", "max_tokens": "ten"}                  | max_tokens
            /v1/completions      | {"prompt": "hi", "max_tokens": 0}                      | max_tokens
            /v1/completions      | {"prompt": "hi", "max_tokens": 1.5}                    | max_tokens
            /v1/completions      | {"prompt": "hi", "max_tokens": 600}                    | max_tokens
            /v1/completions      | {"prompt": "hi", "top_p": 0}                           | top_p
            /v1/completions      | {"prompt": "hi", "n": 0}                               | n
            /v1/completions      | {"prompt": "hi", "stop": 3}                            | stop
            /v1/completions      | {"prompt": "hi", "logprobs": 21}                       | logprobs
            /v1/completions      | {"prompt": "hi", "logprobs": true}                     | logprobs
            /v1/completions      | {"prompt": "hi", "presence_penalty": 3}                | presence_penalty
            /v1/completions      | {"prompt": "hi", "frenquency_penalty": 1}              | frenquency_penalty
            /v1/completions      | {"prompt": "hi", "stream_options": {"include_usage": true}} | stream_options
            /v1/completions      | {"prompt": "hi", "suffix": "end"}                      | suffix
            /v1/completions      | {"max_tokens": 3}                                      | prompt
            /v1/completions      | {"prompt": []}                                         | prompt
            /v1/completions      | {"prompt": [1, 100000]}                                | prompt
            /v1/completions      | {"prompt": [1, -1]}                                    | prompt
            /v1/completions      | {"prompt": {"text": "hi"}}                             | prompt
            /v1/completions      | {"prompt": "hi", "seed": "x"}                          | seed
            /v1/completions      | {"prompt": "hi", "ignore_eos": "yes"}                  | ignore_eos
            /v1/chat/completions | {"messages": []}                                       | messages
            /v1/chat/completions | {"messages": [{"role": "wizard", "content": "hi"}]}    | messages[0].role
            /v1/chat/completions | {"messages": [{"role": "user", "content": 5}]}         | messages[0].content
            /v1/chat/completions | {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]} | messages[0].content
            /v1/chat/completions | {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2} | top_logprobs
            /v1/chat/completions | {"messages": [{"role": "user", "content": "hi"}], "logprobs": 1} | logprobs
            /v1/chat/completions | {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 1000} | max_completion_tokens
            /v1/chat/completions | {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]} | tools
            /v1/chat/completions | {"prompt": "hi"}                                       | prompt
            /tokenize            | {"prompt": 3}                                          | prompt
            /detokenize          | {"tokens": [1, 9999]}                                  | tokens
            /detokenize          | {"tokens": "1 2"}                                      | tokens
            """)
    void invalidRequestsGet400NamingTheParameter(String path, String body, String param) {
        JsonNode error = client.post(path, body).error(400);
        assertEquals("invalid_request_error", error.path("type").asText());
        if (param == null) {
            assertTrue(error.path("param").isNull(), error.toString());
        } else {
            assertEquals(param, error.path("param").asText(), error.toString());
        }
    }

    @Test
    void promptPlusMaxTokensOverTheContextIsRefusedWithVllmsMessage() {
        int[] ids = new int[500];
        java.util.Arrays.fill(ids, 5);
        JsonNode error = client.post("/v1/completions", Map.of("prompt", ids, "max_tokens", 20)).error(400);
        assertTrue(error.path("message").asText().contains("maximum context length is 512 tokens"), error.toString());
        int[] tooLong = new int[512];
        java.util.Arrays.fill(tooLong, 5);
        JsonNode noRoom = client.post("/v1/completions", Map.of("prompt", tooLong)).error(400);
        assertEquals("prompt", noRoom.path("param").asText());
    }

    @Test
    void unknownModelIs404() {
        JsonNode error = client.post("/v1/completions", Map.of("model", "gpt-17", "prompt", "hi")).error(404);
        assertEquals("model_not_found", error.path("code").asText());
        assertEquals("model", error.path("param").asText());
        client.post("/v1/chat/completions", Map.of("model", "gpt-17", "messages", List.of(Map.of("role", "user",
                "content", "hi")))).error(404);
        client.post("/tokenize", Map.of("model", "gpt-17", "prompt", "hi")).error(404);
    }

    @Test
    void unknownRouteIs404AndWrongMethodIs405() {
        assertEquals("not_found", client.get("/v1/engines").error(404).path("code").asText());
        client.get("/nothing/here").error(404);
        client.get("/v1/completions").error(405);
        client.post("/v1/models", "{}").error(405);
        client.post("/health", "{}").error(405);
    }

    @Test
    void oversizedBodyIs413() {
        String big = "{\"prompt\": \"" + "a".repeat((int) BODY_LIMIT) + "\"}";
        JsonNode error = client.post("/v1/completions", big).error(413);
        assertEquals("request_too_large", error.path("code").asText());
        // Also when the length is not announced up front (chunked upload).
        var request = client.request("/v1/completions").POST(HttpRequest.BodyPublishers.ofInputStream(
                () -> new java.io.ByteArrayInputStream(big.getBytes()))).build();
        client.send(request).error(413);
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2)).status());
    }

    @Test
    void serverStillServesAfterGarbage() {
        client.post("/v1/chat/completions", "\u0000\u0001garbage").error(400);
        client.post("/v1/completions", "{\"prompt\": \"a\", \"prompt\": \"b\"}").error(400);
        client.post("/v1/completions", "{\"prompt\": " + "[".repeat(5000) + "]".repeat(5000) + "}").error(400);
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2)).status());
    }
}
