package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Many clients at once (completions and chat): every stream completes with exactly its tokens, and the KV pool drains back to full. */
class ConcurrencyTest {
    private static final int CLIENTS = 200;
    private static final int MAX_TOKENS = 24;
    private static final List<String> PROMPTS = List.of("Once upon a time", "The cat", "Lily and Tom", "One day",
            "The sun was");
    private static TestServer server;
    private static Client client;

    @BeforeAll
    static void start() {
        // Fewer sequences than clients: some wait, some get preempted, all must finish.
        server = TestServer.start(HttpSettings.local(), 64, Duration.ZERO);
        client = server.client();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void twoHundredConcurrentStreamsAllCompleteAndFreeTheirBlocks() throws Exception {
        Map<String, String> expected = new java.util.HashMap<>();
        for (String p : PROMPTS) {
            expected.put("c:" + p, client.post("/v1/completions", body(p, false, false)).json().path("choices").get(0)
                    .path("text").asText());
            expected.put("m:" + p, client.post("/v1/chat/completions", body(p, false, true)).json().path("choices")
                    .get(0).path("message").path("content").asText());
        }
        List<CompletableFuture<HttpResponse<String>>> replies = new ArrayList<>();
        for (int i = 0; i < CLIENTS; i++) {
            String prompt = PROMPTS.get(i % PROMPTS.size());
            boolean chat = i % 2 == 1;
            HttpRequest request = client.request(chat ? "/v1/chat/completions" : "/v1/completions")
                    .POST(HttpRequest.BodyPublishers.ofString(Client.JSON.writeValueAsString(body(prompt, true, chat))))
                    .build();
            replies.add(client.http().sendAsync(request, HttpResponse.BodyHandlers.ofString()));
        }
        for (int i = 0; i < CLIENTS; i++) {
            HttpResponse<String> r = replies.get(i).get();
            Client.Reply reply = new Client.Reply(r.statusCode(), r.body(), r);
            assertEquals(200, reply.status(), reply.body());
            List<JsonNode> chunks = reply.chunks();
            StringBuilder text = new StringBuilder();
            chunks.forEach(c -> c.path("choices").forEach(ch -> text.append(ch.has("delta")
                    ? ch.path("delta").path("content").asText("") : ch.path("text").asText())));
            String key = (i % 2 == 1 ? "m:" : "c:") + PROMPTS.get(i % PROMPTS.size());
            assertEquals(expected.get(key), text.toString(), "stream " + i + " (" + key + ")");
            assertEquals(MAX_TOKENS, chunks.getLast().path("usage").path("completion_tokens").asInt());
        }
        JsonNode replica = client.idleReplica();
        assertEquals(0, replica.path("num_requests_running").asInt());
        assertEquals(0, replica.path("num_requests_waiting").asInt());
        assertEquals(replica.path("num_kv_blocks").asInt(), replica.path("num_free_kv_blocks").asInt(),
                "every KV block is free again");
        assertEquals(0, replica.path("active_streams").asInt());
    }

    private static Map<String, Object> body(String prompt, boolean stream, boolean chat) {
        Map<String, Object> body = new java.util.HashMap<>(Map.of("max_tokens", MAX_TOKENS, "temperature", 0,
                "ignore_eos", true));
        if (chat) {
            body.put("messages", List.of(Map.of("role", "user", "content", prompt)));
        } else {
            body.put("prompt", prompt);
        }
        if (stream) {
            body.put("stream", true);
            body.put("stream_options", Map.of("include_usage", true));
        }
        return body;
    }
}
