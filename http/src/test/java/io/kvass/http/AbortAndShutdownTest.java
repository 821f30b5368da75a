package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.junit.jupiter.api.Test;

/**
 * Requests that end early: a client that disconnects mid-stream, a full waiting queue, a server shutting
 * down. Each server here is slowed to ~20 ms per step so that there is time to act while requests run.
 */
class AbortAndShutdownTest {
    private static final Duration STEP = Duration.ofMillis(20);
    private static final String ABORTED = "vllm:request_success_total{finished_reason=\"abort\",model_name=\""
            + TestServer.MODEL + "\"}";

    /** A streaming request on a raw socket, so the test decides exactly when the connection closes. */
    private static Socket openStream(TestServer server, String body) throws IOException {
        Socket socket = new Socket("127.0.0.1", server.server.address().getPort());
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        OutputStream out = socket.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
        return socket;
    }

    /** Reads until {@code marker} has arrived (e.g. the first data line). */
    private static String readUntil(Socket socket, String marker) throws IOException {
        InputStream in = socket.getInputStream();
        StringBuilder seen = new StringBuilder();
        byte[] buf = new byte[4096];
        while (!seen.toString().contains(marker)) {
            int n = in.read(buf);
            if (n < 0) {
                break;
            }
            seen.append(new String(buf, 0, n, StandardCharsets.UTF_8));
        }
        return seen.toString();
    }

    private static void await(String what, java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    private static Predicate<JsonNode> idleAndFull() {
        return r -> r.path("num_requests_running").asInt() == 0 && r.path("num_requests_waiting").asInt() == 0
                && r.path("num_free_kv_blocks").asInt() == r.path("num_kv_blocks").asInt();
    }

    private static final String LONG = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 400, \"ignore_eos\": true, "
            + "\"temperature\": 0, \"stream\": true}";

    @Test
    void aDisconnectingClientsRequestIsAbortedAndItsBlocksFreed() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local(), 8, STEP)) {
            Client client = server.client();
            try (Socket socket = openStream(server, LONG)) {
                String head = readUntil(socket, "data: {");
                assertTrue(head.startsWith("HTTP/1.1 200"), head);
                await("the request to run", () -> client.replica().path("num_requests_running").asInt() == 1);
                assertTrue(client.replica().path("num_free_kv_blocks").asInt()
                        < client.replica().path("num_kv_blocks").asInt());
            }
            await("the abort", () -> client.metric(ABORTED) == 1);
            await("the KV pool to be full again", () -> idleAndFull().test(client.replica()));
            double generated = client.metric("vllm:generation_tokens_total{model_name=\"" + TestServer.MODEL + "\"}");
            assertTrue(generated < 400, "stopped early, generated " + generated);
            assertEquals(0, client.replica().path("active_streams").asInt());
        }
    }

    @Test
    void aNonStreamedRequestIsAbortedWhenItsClientDisconnects() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local(), 8, STEP)) {
            Client client = server.client();
            try (Socket socket = openStream(server, LONG.replace("\"stream\": true", "\"stream\": false"))) {
                await("the request to run", () -> client.replica().path("num_requests_running").asInt() == 1);
                await("a few tokens", () -> client.metric(
                        "vllm:generation_tokens_total{model_name=\"" + TestServer.MODEL + "\"}") >= 3);
            }
            await("the abort", () -> client.metric(ABORTED) == 1);
            await("the KV pool to be full again", () -> idleAndFull().test(client.replica()));
            double generated = client.metric("vllm:generation_tokens_total{model_name=\"" + TestServer.MODEL + "\"}");
            assertTrue(generated < 400, "stopped early, generated " + generated);
        }
    }

    @Test
    void aFullWaitingQueueGets503UntilItDrains() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local().withLimits(1 << 20, 1), 1, STEP)) {
            Client client = server.client();
            // NOTE: one runs, one waits at the replica (its queue bound is 1), one is held at the gateway (max-waiting 1)
            try (Socket running = openStream(server, LONG)) {
                await("one running", () -> client.replica().path("num_requests_running").asInt() == 1);
                try (Socket waiting = openStream(server, LONG)) {
                    await("one waiting at the replica", () -> client.replica().path("num_requests_waiting").asInt() == 1);
                    try (Socket held = openStream(server, LONG)) {
                        await("one held at the gateway",
                                () -> client.get("/admin/replicas").json().path("num_requests_held").asInt() == 1);
                        Client.Reply refused = client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2));
                        JsonNode error = refused.error(503);
                        assertEquals("server_error", error.path("type").asText());
                        assertEquals("1", refused.raw().headers().firstValue("retry-after").orElseThrow());
                        client.post("/v1/chat/completions", Map.of("messages",
                                List.of(Map.of("role", "user", "content", "hi")), "stream", true)).error(503);
                    }
                }
            }
            await("all three aborted", () -> idleAndFull().test(client.replica()));
            assertEquals(200, client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2)).status());
        }
    }

    @Test
    void aNonStreamedRequestPastTheRequestTimeoutIsAbortedWithAnError() throws Exception {
        HttpSettings settings = HttpSettings.local().withRequestTimeout(Duration.ofMillis(500));
        try (TestServer server = TestServer.start(settings, 8, STEP)) {
            Client client = server.client();
            JsonNode error = client.post("/v1/completions", Map.of("prompt", "Once", "max_tokens", 400,
                    "ignore_eos", true)).error(503);
            assertEquals("request_timeout", error.path("code").asText());
            await("the abort", () -> client.metric(ABORTED) == 1);
            await("the KV pool to be full again", () -> idleAndFull().test(client.replica()));
        }
    }

    @Test
    void shutdownFinishesShortStreamsAndEndsLongOnesCleanly() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local(), 8, STEP)) {
            Client client = server.client();
            server.server.stopOnShutdown(server.system, Duration.ofMillis(600));
            CompletableFuture<HttpResponse<String>> longStream = client.http().sendAsync(client.request("/v1/completions")
                    .POST(HttpRequest.BodyPublishers.ofString(LONG)).build(), HttpResponse.BodyHandlers.ofString());
            CompletableFuture<HttpResponse<String>> shortOne = client.http().sendAsync(client.request("/v1/completions")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 10, "
                            + "\"ignore_eos\": true}")).build(), HttpResponse.BodyHandlers.ofString());
            await("both running", () -> client.replica().path("num_requests_running").asInt() == 2);

            CoordinatedShutdown.get(server.system).run(CoordinatedShutdown.unknownReason());

            HttpResponse<String> s = shortOne.get();
            assertEquals(200, s.statusCode(), s.body());
            assertEquals("length", Client.JSON.readTree(s.body()).path("choices").get(0).path("finish_reason").asText());
            HttpResponse<String> l = longStream.get();
            List<JsonNode> chunks = new Client.Reply(l.statusCode(), l.body(), l).chunks();
            JsonNode last = chunks.getLast().path("choices").get(0);
            assertEquals("abort", last.path("finish_reason").asText(), l.body());
            assertTrue(chunks.size() < 400);
            server.system.getWhenTerminated().toCompletableFuture().get();
            assertThrows(Exception.class, () -> client.get("/health"), "no longer listening");
        }
    }
}
