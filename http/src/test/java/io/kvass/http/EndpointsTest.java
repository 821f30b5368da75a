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

/** Everything besides generation: models, tokenize, detokenize, health, version, metrics, admin. */
class EndpointsTest {
    private static final String LABEL = "{model_name=\"" + TestServer.MODEL + "\"}";
    /** Per-replica series also name the replica and its node. */
    private static final String REPLICA_LABELS = "{model_name=\"" + TestServer.MODEL
            + "\",node=\"local\",replica=\"" + TestServer.MODEL + "-0\"}";
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
    void modelsListsTheServedModel() {
        JsonNode list = client.get("/v1/models").json();
        assertEquals("list", list.path("object").asText());
        assertEquals(1, list.path("data").size());
        JsonNode model = list.path("data").get(0);
        assertEquals(TestServer.MODEL, model.path("id").asText());
        assertEquals("model", model.path("object").asText());
        assertEquals("kvass", model.path("owned_by").asText());
        assertEquals(512, model.path("max_model_len").asInt());
        assertTrue(model.path("created").isIntegralNumber());
    }

    @Test
    void tokenizeAndDetokenizeRoundTrip() {
        JsonNode tokens = client.post("/tokenize", Map.of("model", TestServer.MODEL, "prompt", "Once upon a time")).json();
        int[] expected = server.replica.tokenizer().encode("Once upon a time", true);
        assertEquals(expected.length, tokens.path("count").asInt());
        assertEquals(expected.length, tokens.path("tokens").size());
        assertEquals(expected[0], tokens.path("tokens").get(0).asInt());
        assertEquals(512, tokens.path("max_model_len").asInt());

        JsonNode noSpecial = client.post("/tokenize", Map.of("prompt", "Once upon a time", "add_special_tokens", false))
                .json();
        assertEquals(expected.length - 1, noSpecial.path("count").asInt());

        JsonNode text = client.post("/detokenize", Map.of("tokens", noSpecial.path("tokens"))).json();
        assertEquals("Once upon a time", text.path("prompt").asText());
    }

    @Test
    void healthVersionAndAdmin() {
        Client.Reply health = client.get("/health");
        assertEquals(200, health.status());
        JsonNode version = client.get("/version").json();
        assertFalse(version.path("version").asText().isEmpty());
        assertFalse(version.path("version").asText().contains("${"), "filtered by Maven");
        JsonNode replica = client.idleReplica();
        assertEquals(TestServer.MODEL, replica.path("model").asText());
        assertTrue(replica.path("available").asBoolean());
        assertEquals(replica.path("num_kv_blocks").asInt(), replica.path("num_free_kv_blocks").asInt());
    }

    @Test
    void metricsUseVllmNamesAndMoveAsRequestsRun() {
        Client.Reply before = client.get("/metrics");
        assertEquals(200, before.status());
        assertTrue(before.raw().headers().firstValue("content-type").orElseThrow().startsWith("text/plain"));
        for (String name : List.of("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:prompt_tokens_total",
                "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                "vllm:inter_token_latency_seconds_count", "vllm:e2e_request_latency_seconds_sum")) {
            assertTrue(before.body().contains(name + "{model_name=\"" + TestServer.MODEL + "\""), name + " in\n"
                    + before.body());
        }
        assertTrue(before.body().contains("# TYPE vllm:time_to_first_token_seconds histogram"));
        double prompt0 = client.metric("vllm:prompt_tokens_total" + LABEL);
        double generated0 = client.metric("vllm:generation_tokens_total" + LABEL);
        double ttft0 = client.metric("vllm:time_to_first_token_seconds_count" + LABEL);
        double e2e0 = client.metric("vllm:e2e_request_latency_seconds_count" + LABEL);
        String length = "vllm:request_success_total{finished_reason=\"length\",model_name=\"" + TestServer.MODEL + "\"}";
        double success0 = client.metric(length);
        double queries0 = client.metric("vllm:prefix_cache_queries_total" + REPLICA_LABELS);

        client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 7, "temperature", 0,
                "ignore_eos", true));
        int promptLen = server.replica.tokenizer().encode("Once upon a time", true).length;
        assertEquals(prompt0 + promptLen, client.metric("vllm:prompt_tokens_total" + LABEL));
        assertEquals(generated0 + 7, client.metric("vllm:generation_tokens_total" + LABEL));
        assertEquals(ttft0 + 1, client.metric("vllm:time_to_first_token_seconds_count" + LABEL));
        assertEquals(e2e0 + 1, client.metric("vllm:e2e_request_latency_seconds_count" + LABEL));
        assertEquals((Double.isNaN(success0) ? 0 : success0) + 1, client.metric(length));
        client.replicaWhen("the request done", r -> r.path("num_requests_running").asInt() == 0);
        assertTrue(client.metric("vllm:prefix_cache_queries_total" + REPLICA_LABELS) > queries0, "the prefix cache was queried");
        assertEquals(0, client.metric("vllm:num_requests_running" + REPLICA_LABELS));
        assertEquals(0, client.metric("vllm:kv_cache_usage_perc" + REPLICA_LABELS));
    }
}
