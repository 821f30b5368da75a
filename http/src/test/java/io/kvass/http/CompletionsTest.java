package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@code POST /v1/completions}: shapes, prompt forms, streaming, n, stop, logprobs, echo, seeds. */
class CompletionsTest {
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

    @Test
    void nonStreamedCompletionHasOpenAisShape() {
        Client.Reply r = client.post("/v1/completions", Map.of("model", TestServer.MODEL, "prompt", "Once upon a time",
                "max_tokens", 12, "temperature", 0, "ignore_eos", true));
        assertEquals(200, r.status(), r.body());
        assertTrue(r.raw().headers().firstValue("content-type").orElseThrow().startsWith("application/json"));
        JsonNode body = r.json();
        assertTrue(body.path("id").asText().startsWith("cmpl-"), body.toString());
        assertEquals("text_completion", body.path("object").asText());
        assertTrue(body.path("created").isIntegralNumber());
        assertEquals(TestServer.MODEL, body.path("model").asText());
        JsonNode choice = body.path("choices").get(0);
        assertEquals(1, body.path("choices").size());
        assertEquals(0, choice.path("index").asInt());
        assertFalse(choice.path("text").asText().isEmpty());
        assertTrue(choice.path("logprobs").isNull());
        assertEquals("length", choice.path("finish_reason").asText());
        JsonNode usage = body.path("usage");
        int prompt = server.replica.tokenizer().encode("Once upon a time", true).length;
        assertEquals(prompt, usage.path("prompt_tokens").asInt());
        assertEquals(12, usage.path("completion_tokens").asInt());
        assertEquals(prompt + 12, usage.path("total_tokens").asInt());
    }

    @Test
    void streamedTextEqualsNonStreamedAndUsageComesLast() {
        Map<String, Object> request = Map.of("prompt", "The cat", "max_tokens", 20, "temperature", 0, "ignore_eos", true);
        String whole = client.post("/v1/completions", request).json().path("choices").get(0).path("text").asText();
        Client.Reply r = client.post("/v1/completions", with(request, Map.of("stream", true,
                "stream_options", Map.of("include_usage", true))));
        assertEquals(200, r.status(), r.body());
        assertTrue(r.raw().headers().firstValue("content-type").orElseThrow().startsWith("text/event-stream"));
        List<JsonNode> chunks = r.chunks();
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks.subList(0, chunks.size() - 1)) {
            assertEquals("text_completion", c.path("object").asText());
            assertTrue(c.has("usage") && c.path("usage").isNull(), "usage: null on every chunk but the last");
            text.append(c.path("choices").get(0).path("text").asText());
        }
        assertEquals(whole, text.toString());
        JsonNode last = chunks.getLast();
        assertEquals(0, last.path("choices").size());
        assertEquals(20, last.path("usage").path("completion_tokens").asInt());
        JsonNode finishing = chunks.get(chunks.size() - 2).path("choices").get(0);
        assertEquals("length", finishing.path("finish_reason").asText());
    }

    @Test
    void promptsAsTokenIdsStringsAndBatches() {
        int[] ids = server.replica.tokenizer().encode("Once upon a time", true);
        String fromText = text(client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 8,
                "temperature", 0)).json(), 0);
        String fromIds = text(client.post("/v1/completions", Map.of("prompt", ids, "max_tokens", 8,
                "temperature", 0)).json(), 0);
        assertEquals(fromText, fromIds);

        JsonNode batch = client.post("/v1/completions", Map.of("prompt", List.of("Once upon a time", "The dog"),
                "max_tokens", 8, "temperature", 0, "n", 2)).json();
        assertEquals(4, batch.path("choices").size(), batch.toString());
        for (int i = 0; i < 4; i++) {
            assertEquals(i, batch.path("choices").get(i).path("index").asInt());
        }
        assertEquals(fromText, text(batch, 0));
        assertEquals(fromText, text(batch, 1), "greedy: both completions of a prompt agree");
        int p0 = ids.length;
        int p1 = server.replica.tokenizer().encode("The dog", true).length;
        assertEquals(p0 + p1, batch.path("usage").path("prompt_tokens").asInt());

        JsonNode idBatch = client.post("/v1/completions", Map.of("prompt", List.of(ids, List.of(1)), "max_tokens", 8,
                "temperature", 0)).json();
        assertEquals(fromText, text(idBatch, 0));
        assertEquals(2, idBatch.path("choices").size());
    }

    @Test
    void stopStringEndsWithStopReason() {
        String free = text(client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 30,
                "temperature", 0)).json(), 0);
        String stop = free.substring(10, 13);
        JsonNode choice = client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 30,
                "temperature", 0, "stop", List.of(stop))).json().path("choices").get(0);
        assertEquals("stop", choice.path("finish_reason").asText());
        assertEquals(stop, choice.path("stop_reason").asText());
        assertEquals(free.substring(0, free.indexOf(stop)), choice.path("text").asText());
    }

    @Test
    void logprobsHaveTokensOffsetsAndTopAlternatives() {
        JsonNode choice = client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 5,
                "temperature", 0, "logprobs", 3)).json().path("choices").get(0);
        JsonNode lp = choice.path("logprobs");
        assertEquals(5, lp.path("tokens").size(), lp.toString());
        assertEquals(5, lp.path("token_logprobs").size());
        assertEquals(5, lp.path("text_offset").size());
        assertEquals(0, lp.path("text_offset").get(0).asInt());
        for (int i = 0; i < 5; i++) {
            JsonNode top = lp.path("top_logprobs").get(i);
            assertTrue(top.size() >= 1 && top.size() <= 3, top.toString());
            double best = Double.NEGATIVE_INFINITY;
            for (JsonNode v : top) {
                best = Math.max(best, v.asDouble());
            }
            assertEquals(best, lp.path("token_logprobs").get(i).asDouble(), 1e-4, "greedy picks the top token");
            assertTrue(lp.path("token_logprobs").get(i).asDouble() <= 0);
        }
    }

    @Test
    void echoPrependsThePrompt() {
        String plain = text(client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 6,
                "temperature", 0)).json(), 0);
        String echoed = text(client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 6,
                "temperature", 0, "echo", true)).json(), 0);
        assertEquals("Once upon a time" + plain, echoed);
    }

    @Test
    void seededSamplingIsReproducibleAndDefaultMaxTokensFillsTheContext() {
        Map<String, Object> request = Map.of("prompt", "Once upon a time", "max_tokens", 20, "temperature", 1.0,
                "seed", 1234, "ignore_eos", true);
        assertEquals(text(client.post("/v1/completions", request).json(), 0),
                text(client.post("/v1/completions", request).json(), 0));

        JsonNode body = client.post("/v1/completions", Map.of("prompt", List.of(1), "temperature", 0,
                "ignore_eos", true)).json();
        assertEquals(server.replica.maxModelLen() - 1, body.path("usage").path("completion_tokens").asInt());
        assertEquals("length", body.path("choices").get(0).path("finish_reason").asText());
    }

    static String text(JsonNode body, int choice) {
        return body.path("choices").get(choice).path("text").asText();
    }

    static Map<String, Object> with(Map<String, Object> base, Map<String, Object> more) {
        var all = new java.util.HashMap<>(base);
        all.putAll(more);
        return all;
    }
}
