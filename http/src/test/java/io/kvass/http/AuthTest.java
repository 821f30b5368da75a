package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** With an API key, /v1 and /admin need it as a bearer token; health, metrics and version stay open. */
class AuthTest {
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start(HttpSettings.local().withApiKey("sk-test-123"), 8, Duration.ZERO);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void missingOrWrongKeyIs401() {
        Client anonymous = server.client();
        for (String path : List.of("/v1/models", "/admin/replicas")) {
            JsonNode error = anonymous.get(path).error(401);
            assertEquals("invalid_api_key", error.path("code").asText());
        }
        anonymous.post("/v1/completions", Map.of("prompt", "hi")).error(401);
        anonymous.post("/v1/chat/completions", Map.of("messages", List.of())).error(401);
        Client wrong = server.client().withKey("sk-test-124");
        wrong.get("/v1/models").error(401);
        wrong.post("/v1/completions", Map.of("prompt", "hi", "stream", true)).error(401);
        var raw = anonymous.request("/v1/models").header("Authorization", "sk-test-123").GET().build();
        anonymous.send(raw).error(401);
    }

    @Test
    void rightKeyPasses() {
        Client client = server.client().withKey("sk-test-123");
        assertEquals(200, client.get("/v1/models").status());
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2)).status());
        assertEquals(200, client.get("/admin/replicas").status());
    }

    @Test
    void healthMetricsVersionAndTokenizeAreOpen() {
        Client anonymous = server.client();
        assertEquals(200, anonymous.get("/health").status());
        assertEquals(200, anonymous.get("/metrics").status());
        assertEquals(200, anonymous.get("/version").status());
        assertEquals(200, anonymous.post("/tokenize", Map.of("prompt", "hi")).status());
    }
}
