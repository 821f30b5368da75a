package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole generator against an in-process server ({@code com.sun.net.httpserver}) that streams fake
 * SSE chunks: it waits {@link #TTFT_MS} before the first token and {@link #ITL_MS} between tokens, so
 * counts must be exact and times at least the delays (the upper bounds are loose: the machine may be busy).
 */
class FakeServerIntegrationTest {
    static {
        // TCP_NODELAY on the fake server's sockets: without it Nagle holds a chunk's second segment until
        // the client's delayed ACK (~40 ms), which shows up as ITL outliers (read once, when the class loads)
        System.setProperty("sun.net.httpserver.nodelay", "true");
    }

    static final int TTFT_MS = 120;
    static final int ITL_MS = 25;

    private HttpServer server;
    private ExecutorService executor;
    private final ConcurrentLinkedQueue<JsonNode> bodies = new ConcurrentLinkedQueue<>();
    private final AtomicInteger served = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger maxInFlight = new AtomicInteger();
    private volatile int failEvery; // every n-th generation request answers 500 (0: never)
    private String baseUrl;

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        executor = Executors.newCachedThreadPool();
        server.setExecutor(executor);
        server.createContext("/v1/models", ex -> respond(ex, 200,
                "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\",\"object\":\"model\"}]}"));
        server.createContext("/tokenize", this::tokenize);
        server.createContext("/v1/completions", ex -> generate(ex, false));
        server.createContext("/v1/chat/completions", ex -> generate(ex, true));
        server.start();
        baseUrl = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        server.stop(0);
        executor.shutdownNow();
    }

    private static void respond(HttpExchange ex, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(bytes);
        }
    }

    /** One token per space-separated word, ids 100 + word length. */
    private void tokenize(HttpExchange ex) throws IOException {
        JsonNode body = OpenAiStreamClient.JSON.readTree(ex.getRequestBody());
        StringBuilder ids = new StringBuilder();
        for (String w : body.get("prompt").asText().strip().split(" +")) {
            if (!w.isEmpty()) {
                ids.append(ids.isEmpty() ? "" : ",").append(100 + w.length());
            }
        }
        respond(ex, 200, "{\"count\":0,\"tokens\":[" + ids + "]}");
    }

    private void generate(HttpExchange ex, boolean chat) throws IOException {
        JsonNode body = OpenAiStreamClient.JSON.readTree(ex.getRequestBody());
        bodies.add(body);
        int n = served.incrementAndGet();
        if (failEvery > 0 && n % failEvery == 0) {
            respond(ex, 500, "{\"error\":{\"message\":\"injected failure\",\"type\":\"InternalServerError\"}}");
            return;
        }
        maxInFlight.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
        try {
            int maxTokens = body.get(chat ? "max_completion_tokens" : "max_tokens").asInt();
            int promptTokens = chat ? body.at("/messages/0/content").asText().split(" ").length
                    : body.get("prompt").size();
            ex.getResponseHeaders().set("Content-Type", "text/event-stream");
            ex.sendResponseHeaders(200, 0); // chunked
            OutputStream os = ex.getResponseBody();
            if (chat) { // the role chunk comes at once and is not a token
                send(os, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}");
            }
            sleep(TTFT_MS);
            for (int i = 0; i < maxTokens; i++) {
                if (i > 0) {
                    sleep(ITL_MS);
                }
                String finish = i == maxTokens - 1 ? "\"length\"" : "null";
                send(os, chat
                        ? "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" t" + i + "\"},\"finish_reason\":" + finish + "}]}"
                        : "{\"choices\":[{\"index\":0,\"text\":\" t" + i + "\",\"finish_reason\":" + finish + "}],"
                                + "\"usage\":null}");
            }
            send(os, "{\"choices\":[],\"usage\":{\"prompt_tokens\":" + promptTokens + ",\"completion_tokens\":"
                    + maxTokens + ",\"total_tokens\":" + (promptTokens + maxTokens) + "}}");
            os.write(": trailing comment\r\n\r\ndata: [DONE]\r\n\r\n".getBytes(StandardCharsets.UTF_8));
            os.close();
        } finally {
            inFlight.decrementAndGet();
        }
    }

    private static void send(OutputStream os, String json) throws IOException {
        os.write(("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8));
        os.flush();
    }

    private static void sleep(int ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private Options.Builder options(int prompts, int input, int output) {
        Options.Builder b = Options.builder();
        b.baseUrl = baseUrl;
        b.numPrompts = prompts;
        b.randomInputLen = input;
        b.randomOutputLen = output;
        b.randomVocabSize = 1000;
        b.ignoreEos = true;
        b.quiet = true;
        return b;
    }

    @Test
    void completionsAtFixedConcurrency(@TempDir Path dir) throws Exception {
        Options.Builder b = options(12, 16, 6);
        b.maxConcurrency = 4;
        b.warmupRequests = 1;
        b.saveDetailed = true;
        b.resultFile = java.util.Optional.of(dir.resolve("r.json"));
        BenchmarkResult r = LoadGenerator.run(b.build(), System.err);
        System.err.print(r.table());

        assertEquals("fake-model", r.model, "model from GET /v1/models");
        assertEquals(13, served.get(), "one warm-up + 12");
        assertTrue(maxInFlight.get() <= 4, "never more than --max-concurrency in flight: " + maxInFlight.get());
        assertEquals(12, r.completed);
        assertEquals(0, r.failed);
        assertEquals(12 * 16, r.totalInputTokens);
        assertEquals(12 * 6, r.totalOutputTokens);
        assertEquals(0, r.outputLenMismatches);
        assertEquals(12, r.ttft.count());
        assertEquals(12, r.tpot.count());
        assertEquals(12 * 5, r.itl.count(), "one gap per token after the first");
        assertEquals(12, r.e2el.count());
        assertTrue(r.peakConcurrentRequests <= 4 && r.peakConcurrentRequests >= 1);

        double minE2e = TTFT_MS + 5.0 * ITL_MS;
        assertTrue(r.ttft.min() >= TTFT_MS - 2, "TTFT >= server delay: " + r.ttft.min());
        assertTrue(r.ttft.median() < TTFT_MS + 250, "TTFT median near the delay: " + r.ttft.median());
        assertTrue(r.itl.mean() > ITL_MS * 0.8 && r.itl.mean() < ITL_MS + 40, "ITL mean ~ delay: " + r.itl.mean());
        assertTrue(r.itl.median() > ITL_MS * 0.8 && r.itl.median() < ITL_MS + 40, "ITL median: " + r.itl.median());
        assertTrue(r.tpot.mean() > ITL_MS * 0.8 && r.tpot.mean() < ITL_MS + 40, "TPOT ~ ITL: " + r.tpot.mean());
        assertTrue(r.e2el.min() >= minE2e - 2, "E2E >= TTFT + 5 ITL: " + r.e2el.min());
        // 12 requests, 4 at a time: at least 3 rounds of the minimal latency
        assertTrue(r.durationS >= 3 * minE2e / 1000 - 0.01, "duration " + r.durationS);
        assertEquals(r.completed / r.durationS, r.requestThroughput, 1e-9);
        assertEquals(12 * 6 / r.durationS, r.outputThroughput, 1e-9);
        assertEquals(12 * (16 + 6) / r.durationS, r.totalTokenThroughput, 1e-9);

        for (JsonNode body : bodies) {
            assertEquals("fake-model", body.get("model").asText());
            assertEquals(16, body.get("prompt").size());
            assertTrue(body.get("ignore_eos").asBoolean());
            assertTrue(body.get("stream").asBoolean());
            assertTrue(body.at("/stream_options/include_usage").asBoolean());
        }

        LoadGenerator.write(r, b.build().resultFile().orElseThrow());
        JsonNode json = OpenAiStreamClient.JSON.readTree(Files.readString(dir.resolve("r.json")));
        assertEquals(12, json.get("completed").asInt());
        assertEquals(4, json.get("max_concurrency").asInt());
        assertEquals(12 * 6, json.get("total_output_tokens").asInt());
        assertEquals(r.ttft.mean(), json.get("mean_ttft_ms").asDouble(), 1e-9);
        assertEquals(r.itl.percentile(99), json.get("p99_itl_ms").asDouble(), 1e-9);
        assertEquals(12, json.get("itls").size());
        assertEquals(5, json.get("itls").get(0).size());
        assertEquals(12, json.get("ttfts").size());

        String table = r.table();
        assertTrue(table.contains("Successful requests:                     12"), table);
        assertTrue(table.contains("Mean TTFT (ms):"), table);
        assertTrue(table.contains("P99 ITL (ms):"), table);
    }

    @Test
    void failuresAreCountedNotMeasured() throws Exception {
        failEvery = 3;
        Options.Builder b = options(9, 8, 3);
        b.maxConcurrency = 3;
        b.warmupRequests = 0;
        BenchmarkResult r = LoadGenerator.run(b.build(), System.err);
        assertEquals(9, served.get());
        assertEquals(3, r.failed);
        assertEquals(6, r.completed);
        assertEquals(6 * 3, r.totalOutputTokens);
        assertEquals(6, r.ttft.count());
        assertEquals(6 * 2, r.itl.count());
        assertEquals(1, r.errors.size());
        String error = r.errors.keySet().iterator().next();
        assertTrue(error.startsWith("HTTP 500") && error.contains("injected failure"), error);
        assertEquals(3, r.errors.get(error));
    }

    @Test
    void openLoopPoissonArrivals() throws Exception {
        Options.Builder b = options(10, 8, 2);
        b.requestRate = 20;
        b.seed = 5;
        b.warmupRequests = 0;
        BenchmarkResult r = LoadGenerator.run(b.build(), System.err);
        assertEquals(10, r.completed);
        double[] offsets = Arrivals.offsets(10, 20, 1.0, 5);
        double minE2e = (TTFT_MS + ITL_MS) / 1000.0;
        assertTrue(r.durationS >= offsets[9] + minE2e - 0.005,
                "the last request is sent at " + offsets[9] + " s; duration " + r.durationS);
    }

    @Test
    void chatWithWordPromptsFittedByTokenize() throws Exception {
        Options.Builder b = options(6, 20, 4);
        b.endpoint = "/v1/chat/completions";
        b.randomVocabSize = 0;
        b.maxConcurrency = 6;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BenchmarkResult r = LoadGenerator.run(b.build(), new PrintStream(log, true, StandardCharsets.UTF_8));
        assertEquals(6, r.completed);
        assertEquals(6 * 20, r.totalInputTokens, "the fake /tokenize counts words, so prompts fit exactly");
        assertEquals(6 * 4, r.totalOutputTokens);
        assertEquals(6 * 3, r.itl.count(), "the role chunk is not a token");
        assertTrue(r.ttft.min() >= TTFT_MS - 2, "TTFT waits for content, not the role chunk: " + r.ttft.min());
        List<JsonNode> chats = bodies.stream().toList();
        assertTrue(chats.stream().allMatch(c -> c.at("/messages/0/content").asText().split(" ").length == 20));
    }

    @Test
    void completionsTokenPoolFromTokenize() throws Exception {
        Options.Builder b = options(3, 10, 2);
        b.randomVocabSize = 0;
        b.warmupRequests = 0;
        BenchmarkResult r = LoadGenerator.run(b.build(), System.err);
        assertEquals(3, r.completed);
        for (JsonNode body : bodies) {
            for (JsonNode id : body.get("prompt")) {
                assertTrue(id.asInt() > 100 && id.asInt() <= 100 + 12, "ids come from /tokenize: " + id);
            }
        }
    }
}
