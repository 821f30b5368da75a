package io.kvass.cluster.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.cluster.cli.GenerateCommand;
import io.kvass.cluster.cli.ServeCommand;
import io.kvass.scheduler.engine.StepExecutor;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import io.kvass.worker.testing.Fixtures;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.StreamSupport;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.junit.jupiter.api.Test;

/** {@code kvass serve} as a one-node cluster: the API reaches the replica through Cluster Sharding. */
class ServingNodeTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String MODEL = Fixtures.stories260K().toString();

    private static ServingNode start(UnaryOperator<StepExecutor> steps, String... extra) {
        List<String> args = new ArrayList<>(List.of("serve", "--model", MODEL, "--host", "127.0.0.1", "--port", "0",
                "--kv-cache-memory", "32M", "--max-num-seqs", "16", "--threads", "1"));
        args.addAll(List.of(extra));
        ServingNode node = ServingNode.start(ServeCommand.settings(args.toArray(String[]::new)), steps);
        node.awaitReplicas(1, java.time.Duration.ofSeconds(60));
        return node;
    }

    private static HttpResponse<String> post(ServingNode node, String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> get(ServingNode node, String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static List<JsonNode> chunks(String sse) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        String[] events = sse.split("\n\n");
        assertEquals("data: [DONE]", events[events.length - 1].trim());
        for (int i = 0; i < events.length - 1; i++) {
            out.add(JSON.readTree(events[i].substring("data: ".length())));
        }
        return out;
    }

    @Test
    void servesThroughShardingAndMatchesKvassGenerate() throws Exception {
        ServingNode node = start(UnaryOperator.identity());
        try {
            node.awaitReplicas(1, java.time.Duration.ofSeconds(60));
            Cluster cluster = Cluster.get(node.system());
            assertEquals(MemberStatus.up(), cluster.selfMember().status(), "a cluster of one, joined to itself");
            JsonNode replicas = JSON.readTree(get(node, "/admin/replicas").body()).path("replicas");
            assertEquals("stories260K-0", replicas.get(0).path("replica").asText(), "the replica entity reported");
            assertEquals(cluster.selfMember().address().toString(), replicas.get(0).path("node").asText());

            assertEquals(200, get(node, "/health").statusCode());
            JsonNode models = JSON.readTree(get(node, "/v1/models").body());
            assertEquals("stories260K", models.path("data").get(0).path("id").asText());

            String messages = "[{\"role\": \"user\", \"content\": \"Once upon a time there was a dog\"}]";
            JsonNode whole = JSON.readTree(post(node, "/v1/chat/completions", "{\"model\": \"stories260K\", "
                    + "\"messages\": " + messages + ", \"max_tokens\": 30, \"temperature\": 0}").body());
            String text = whole.path("choices").get(0).path("message").path("content").asText();
            assertFalse(text.isEmpty());

            StringBuilder streamed = new StringBuilder();
            for (JsonNode c : chunks(post(node, "/v1/chat/completions", "{\"messages\": " + messages
                    + ", \"max_tokens\": 30, \"temperature\": 0, \"stream\": true}").body())) {
                streamed.append(c.path("choices").get(0).path("delta").path("content").asText(""));
            }
            assertEquals(text, streamed.toString());

            JsonNode tokens = JSON.readTree(post(node, "/tokenize", "{\"messages\": " + messages + "}").body());
            String ids = String.join(",", StreamSupport.stream(tokens.path("tokens").spliterator(), false)
                    .map(JsonNode::asText).toList());
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            GenerateCommand.run(new String[] {"generate", "--model", MODEL, "--prompt-ids", ids, "--max-tokens", "30",
                "--temperature", "0", "--json"}, new PrintStream(out, true, StandardCharsets.UTF_8));
            JsonNode generated = JSON.readTree(out.toString(StandardCharsets.UTF_8).trim());
            assertEquals(generated.path("text").asText(), text, "kvass serve and kvass generate agree");

            String metrics = get(node, "/metrics").body();
            assertTrue(metrics.contains("vllm:generation_tokens_total{model_name=\"stories260K\"} 60.0"), metrics);
        } finally {
            node.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
            node.awaitTermination();
        }
    }

    @Test
    void shutdownLetsAStreamFinishWithinTheDrain() throws Exception {
        ServingNode node = start(ServingNodeTest::slow);
        CompletableFuture<HttpResponse<String>> stream = HTTP.sendAsync(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + node.httpPort() + "/v1/completions")).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers
                .ofString("{\"prompt\": \"Once\", \"max_tokens\": 100, \"ignore_eos\": true, \"stream\": true}")).build(),
                HttpResponse.BodyHandlers.ofString());
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!get(node, "/admin/replicas").body().contains("\"num_requests_running\":1")) {
            assertTrue(System.nanoTime() < deadline, "the stream should start");
            Thread.sleep(20);
        }
        // What SIGTERM runs; drain-timeout is 30 s by default and the stream needs about 100 x 20 ms:
        // it finishes within the drain.
        node.shutdown();
        HttpResponse<String> r = stream.get(60, TimeUnit.SECONDS);
        List<JsonNode> chunks = chunks(r.body());
        assertEquals("length", chunks.getLast().path("choices").get(0).path("finish_reason").asText());
        node.awaitTermination();
    }

    @Test
    void aStreamLongerThanTheDrainEndsWithAbort() throws Exception {
        ServingNode node = ServingNode.start(ServeSettings.load(com.typesafe.config.ConfigFactory.parseString(
                "kvass { model = \"" + MODEL.replace("\\", "\\\\") + "\", http { host = 127.0.0.1, port = 0, "
                        + "drain-timeout = 300ms }, kv-cache-memory = 32M, threads = 1 }")), ServingNodeTest::slow);
        node.awaitReplicas(1, Duration.ofSeconds(60));
        CompletableFuture<HttpResponse<String>> stream = HTTP.sendAsync(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + node.httpPort() + "/v1/completions")).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers
                .ofString("{\"prompt\": \"Once\", \"max_tokens\": 400, \"ignore_eos\": true, \"stream\": true}")).build(),
                HttpResponse.BodyHandlers.ofString());
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!get(node, "/admin/replicas").body().contains("\"num_requests_running\":1")) {
            assertTrue(System.nanoTime() < deadline, "the stream should start");
            Thread.sleep(20);
        }
        node.shutdown();
        List<JsonNode> chunks = chunks(stream.get(60, TimeUnit.SECONDS).body());
        assertEquals("abort", chunks.getLast().path("choices").get(0).path("finish_reason").asText());
        assertTrue(chunks.size() < 400);
        node.awaitTermination();
    }

    /**
     * A backend that throws at its 6th step (a test hook on the real step executor, as a CUDA error or a bug would):
     * the replica's engine recomputes the running sequences, and the streamed and whole answers equal those of a
     * replica that never failed.
     */
    @Test
    void aStepThatThrowsIsRecomputedAndEveryAnswerIsUnchanged() throws Exception {
        String body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 1.0, \"seed\": 7, "
                + "\"ignore_eos\": true}";
        String expected;
        ServingNode healthy = start(UnaryOperator.identity());
        try {
            expected = JSON.readTree(post(healthy, "/v1/completions", body).body()).path("choices").get(0)
                    .path("text").asText();
        } finally {
            healthy.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
        java.util.concurrent.atomic.AtomicInteger steps = new java.util.concurrent.atomic.AtomicInteger();
        ServingNode failing = start(inner -> new StepExecutor() {
            @Override
            public CompletionStage<StepResult> execute(StepPlan plan) {
                if (steps.incrementAndGet() == 6) {
                    return CompletableFuture.failedFuture(new IllegalStateException("injected: the device failed"));
                }
                return inner.execute(plan);
            }

            @Override
            public CompletionStage<Void> reset() {
                return inner.reset();
            }

            @Override
            public void close() {
                inner.close();
            }
        });
        try {
            CompletableFuture<HttpResponse<String>> streamed = HTTP.sendAsync(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + failing.httpPort() + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest
                    .BodyPublishers.ofString(body.replace("}", ", \"stream\": true}"))).build(),
                    HttpResponse.BodyHandlers.ofString());
            HttpResponse<String> whole = post(failing, "/v1/completions", body);
            assertEquals(200, whole.statusCode(), whole.body());
            assertEquals(expected, JSON.readTree(whole.body()).path("choices").get(0).path("text").asText());
            StringBuilder text = new StringBuilder();
            for (JsonNode c : chunks(streamed.get(60, TimeUnit.SECONDS).body())) {
                text.append(c.path("choices").path(0).path("text").asText());
            }
            assertEquals(expected, text.toString());
            assertTrue(steps.get() > 6, "the failure happened while they ran");
        } finally {
            failing.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
    }

    /** 20 ms more per step, without blocking the step thread. */
    private static StepExecutor slow(StepExecutor inner) {
        return new StepExecutor() {
            @Override
            public CompletionStage<StepResult> execute(StepPlan plan) {
                return inner.execute(plan).thenCompose(r -> CompletableFuture.supplyAsync(() -> r,
                        CompletableFuture.delayedExecutor(20, TimeUnit.MILLISECONDS)));
            }

            @Override
            public java.util.concurrent.CompletionStage<Void> reset() {
                return inner.reset();
            }

            @Override
            public void close() {
                inner.close();
            }
        };
    }
}
