package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@code POST /v1/chat/completions}: the chat template, streaming vs not vs offline generation, logprobs. */
class ChatCompletionsTest {
    private static final List<Map<String, Object>> MESSAGES = List.of(
            Map.of("role", "system", "content", "Tell a story."),
            Map.of("role", "user", "content", "Once upon a time there was a cat"));
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
    void streamedChatEqualsNonStreamedAndOfflineGreedyGeneration() {
        Map<String, Object> request = Map.of("model", TestServer.MODEL, "messages", MESSAGES, "max_tokens", 40,
                "temperature", 0);
        JsonNode whole = client.post("/v1/chat/completions", request).json();
        assertTrue(whole.path("id").asText().startsWith("chatcmpl-"), whole.toString());
        assertEquals("chat.completion", whole.path("object").asText());
        JsonNode choice = whole.path("choices").get(0);
        assertEquals("assistant", choice.path("message").path("role").asText());
        String text = choice.path("message").path("content").asText();
        assertFalse(text.isEmpty());
        assertTrue(choice.has("logprobs") && choice.path("logprobs").isNull());

        Client.Reply streamed = client.post("/v1/chat/completions", CompletionsTest.with(request, Map.of("stream", true)));
        List<JsonNode> chunks = streamed.chunks();
        JsonNode first = chunks.getFirst();
        assertEquals("chat.completion.chunk", first.path("object").asText());
        assertEquals(whole.path("model").asText(), first.path("model").asText());
        assertEquals("assistant", first.path("choices").get(0).path("delta").path("role").asText());
        StringBuilder joined = new StringBuilder();
        String finish = null;
        for (JsonNode c : chunks) {
            assertEquals(first.path("id").asText(), c.path("id").asText(), "one id for the whole stream");
            assertFalse(c.has("usage"), "no usage field without include_usage");
            JsonNode ch = c.path("choices").get(0);
            joined.append(ch.path("delta").path("content").asText(""));
            if (!ch.path("finish_reason").isNull()) {
                finish = ch.path("finish_reason").asText();
            }
        }
        assertEquals(text, joined.toString());
        assertEquals(choice.path("finish_reason").asText(), finish);

        // The same prompt tokens through the offline engine (what `kvass generate --prompt-ids` runs).
        JsonNode tokenized = client.post("/tokenize", Map.of("messages", MESSAGES)).json();
        int[] ids = new int[tokenized.path("tokens").size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tokenized.path("tokens").get(i).asInt();
        }
        assertEquals(ids.length, whole.path("usage").path("prompt_tokens").asInt());
        assertEquals(text, offlineGreedy(ids, 40));
    }

    private static String offlineGreedy(int[] prompt, int maxTokens) {
        try (ModelReplica replica = ModelReplica.load(ReplicaOptions.cpu(Fixtures.stories260K()))) {
            LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(),
                    SchedulerConfig.defaults(replica.maxModelLen()));
            StringBuilder text = new StringBuilder();
            for (RequestOutput o : engine.generate(List.of(Request.of("x", prompt, SamplingParams.greedy(maxTokens))))) {
                text.append(o.text());
            }
            return text.toString();
        }
    }

    @Test
    void contentPartsAreJoinedTextAndTemplateMatchesTokenize() {
        JsonNode parts = client.post("/tokenize", Map.of("messages", List.of(Map.of("role", "user", "content",
                List.of(Map.of("type", "text", "text", "Once upon"), Map.of("type", "text", "text", "a time")))))).json();
        JsonNode plain = client.post("/tokenize", Map.of("messages", List.of(Map.of("role", "user", "content",
                "Once upon\na time")))).json();
        assertEquals(plain.path("tokens"), parts.path("tokens"));
        assertEquals(1, parts.path("tokens").get(0).asInt(), "the template's BOS, no second one");
        assertTrue(parts.path("tokens").get(1).asInt() != 1);

        JsonNode chat = client.post("/v1/chat/completions", Map.of("messages", List.of(Map.of("role", "user", "content",
                List.of(Map.of("type", "text", "text", "Once upon"), Map.of("type", "text", "text", "a time")))),
                "max_completion_tokens", 5, "temperature", 0)).json();
        assertEquals(parts.path("count").asInt(), chat.path("usage").path("prompt_tokens").asInt());
        assertEquals(5, chat.path("usage").path("completion_tokens").asInt());
    }

    @Test
    void logprobsAndTopLogprobs() {
        JsonNode choice = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 4,
                "temperature", 0, "logprobs", true, "top_logprobs", 2)).json().path("choices").get(0);
        JsonNode content = choice.path("logprobs").path("content");
        assertEquals(4, content.size(), choice.toString());
        StringBuilder joined = new StringBuilder();
        for (JsonNode t : content) {
            assertTrue(t.path("token").isTextual());
            assertTrue(t.path("bytes").isArray());
            assertEquals(2, t.path("top_logprobs").size());
            assertEquals(t.path("top_logprobs").get(0).path("logprob").asDouble(), t.path("logprob").asDouble(), 1e-4);
            assertTrue(t.path("top_logprobs").get(0).path("logprob").asDouble()
                    >= t.path("top_logprobs").get(1).path("logprob").asDouble());
            joined.append(t.path("token").asText());
        }
        assertFalse(joined.isEmpty());

        List<JsonNode> chunks = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 4,
                "temperature", 0, "logprobs", true, "stream", true)).chunks();
        int tokens = 0;
        for (JsonNode c : chunks) {
            JsonNode lp = c.path("choices").get(0).path("logprobs");
            if (!lp.isNull()) {
                for (JsonNode t : lp.path("content")) {
                    assertEquals(0, t.path("top_logprobs").size());
                    tokens++;
                }
            }
        }
        assertEquals(4, tokens);
    }

    @Test
    void nCompletionsStreamWithTheirIndices() {
        List<JsonNode> chunks = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 6,
                "temperature", 0.8, "seed", 7, "n", 3, "stream", true,
                "stream_options", Map.of("include_usage", true))).chunks();
        List<StringBuilder> texts = new ArrayList<>(List.of(new StringBuilder(), new StringBuilder(), new StringBuilder()));
        int[] roles = new int[3];
        int[] finishes = new int[3];
        for (JsonNode c : chunks) {
            for (JsonNode ch : c.path("choices")) {
                int i = ch.path("index").asInt();
                if (ch.path("delta").has("role")) {
                    roles[i]++;
                }
                texts.get(i).append(ch.path("delta").path("content").asText(""));
                if (!ch.path("finish_reason").isNull()) {
                    finishes[i]++;
                }
            }
        }
        assertArrayEquals(new int[] {1, 1, 1}, roles);
        assertArrayEquals(new int[] {1, 1, 1}, finishes);
        assertEquals(18, chunks.getLast().path("usage").path("completion_tokens").asInt());
        JsonNode whole = client.post("/v1/chat/completions", Map.of("messages", MESSAGES, "max_tokens", 6,
                "temperature", 0.8, "seed", 7, "n", 3)).json();
        for (int i = 0; i < 3; i++) {
            assertEquals(whole.path("choices").get(i).path("message").path("content").asText(), texts.get(i).toString(),
                    "seeded choice " + i + " streams what it returns whole");
        }
    }
}
