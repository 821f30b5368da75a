package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.http.guard.ConnectionLimits;
import java.net.http.HttpRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What a hostile client found (issue 19): integers past 64 bits, parser internals in messages, the
 * 413 of announced lengths, slow and partial requests, errors of the HTTP layer itself, bodies that
 * are not JSON. Each answer is an OpenAI-shaped error, and the server keeps serving.
 */
class HostileRequestsTest {
    private static final long BODY_LIMIT = 64 * 1024;
    private static final int PER_CLIENT = 6;
    private static final Duration HEADER_TIMEOUT = Duration.ofMillis(1500);
    private static final Duration BODY_TIMEOUT = Duration.ofMillis(1500);
    private static TestServer server;
    private static Client client;

    @BeforeAll
    static void start() {
        server = TestServer.start(HttpSettings.local().withLimits(BODY_LIMIT, 10_000).withConnectionLimits(
                new ConnectionLimits(HEADER_TIMEOUT, BODY_TIMEOUT, 1024, PER_CLIENT)), 16, Duration.ZERO);
        client = server.client();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    // ---- 1, 2: integers are read exactly; parser internals stay inside ----

    @Test
    void tokenIdsOf2To64AndMoreAreRefusedNotWrapped() {
        // 2^64 + 403 wrapped to 403 ("Once upon a") before.
        String wrapped = "18446744073709552019";
        JsonNode error = client.post("/v1/completions", "{\"prompt\": [" + wrapped + ", 407], \"echo\": true,"
                + " \"max_tokens\": 1}").error(400);
        assertEquals("prompt", error.path("param").asText());
        assertTrue(error.path("message").asText().contains(wrapped), error.toString());
        JsonNode nested = client.post("/v1/completions", "{\"prompt\": [[1, 2], [" + wrapped + "]], \"max_tokens\": 1}")
                .error(400);
        assertTrue(nested.path("message").asText().contains(wrapped), nested.toString());
        client.post("/v1/completions", "{\"prompt\": [9223372036854775808], \"max_tokens\": 1}").error(400);
        client.post("/v1/completions", "{\"prompt\": [4294967699], \"max_tokens\": 1}").error(400); // 2^32 + 403
        client.post("/detokenize", "{\"tokens\": [" + wrapped + "]}").error(400);
    }

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource(delimiter = '|', textBlock = """
            max_tokens      | 9223372036854775808
            max_tokens      | 18446744073709551617
            max_tokens      | 4294967297
            n               | 4294967297
            seed            | 18446744073709551616
            seed            | -9223372036854775809
            top_k           | 4294967296
            min_tokens      | 99999999999999999999999999999
            logprobs        | 4294967297
            """)
    void integersOutOfRangeAreNamedExactly(String field, String value) {
        JsonNode error = client.post("/v1/completions", "{\"prompt\": \"hi\", \"" + field + "\": " + value + "}")
                .error(400);
        String message = error.path("message").asText();
        assertEquals(field, error.path("param").asText(), message);
        assertTrue(message.contains(value) && message.contains("out of range"), message);
        assertFalse(message.contains("expected an integer"), message);
    }

    @Test
    void nestedIntegerListsAreCheckedToo() {
        JsonNode error = client.post("/v1/completions", "{\"prompt\": \"hi\", \"stop_token_ids\": [1, 4294967298]}")
                .error(400);
        assertTrue(error.path("message").asText().contains("4294967298"), error.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "{\"prompt\": NaN}",
        "{\"prompt\": \"hi\", \"temperature\": Infinity}",
        "{\"prompt\": \"hi\", \"temperature\": -Infinity}",
        "{\"prompt\": 'hi'}",
        "{\"prompt\": \"hi\" /* comment */}",
        "{\"prompt\": \"hi\", }",
        "{\"prompt\": \"hi\"} {}",
        "{\"prompt\": 01}",
        "{\"prompt\": \"\u0001\"}",
        "{\"a\": 1, \"a\": 2}",
        "{",
        "",
        "nul",
    })
    void jsonErrorsDoNotLeakParserInternals(String body) {
        String message = client.post("/v1/completions", body).error(400).path("message").asText();
        assertClean(message);
    }

    @Test
    void parserLimitsAreStatedInTheClientsTerms() {
        String deep = "{\"prompt\": " + "[".repeat(100) + "]".repeat(100) + "}";
        String message = client.post("/v1/completions", deep).error(400).path("message").asText();
        assertClean(message);
        assertTrue(message.contains("64 levels"), message);
        String longNumber = "{\"prompt\": \"hi\", \"seed\": " + "9".repeat(2000) + "}";
        assertClean(client.post("/v1/completions", longNumber).error(400).path("message").asText());
        JsonNode huge = client.post("/v1/completions", "{\"prompt\": \"hi\", \"temperature\": 1e400}").error(400);
        assertEquals("temperature", huge.path("param").asText(), huge.toString());
    }

    private static void assertClean(String message) {
        for (String leak : List.of("`", "Feature", "StreamReadConstraints", "jackson", "fasterxml", "enable")) {
            assertFalse(message.toLowerCase().contains(leak.toLowerCase()), "'" + leak + "' in: " + message);
        }
    }

    // ---- 3: an announced length over the limit is a 413 ----

    @Test
    void contentLengthOverTheLimitIs413() {
        for (long size : List.of(BODY_LIMIT + 1, BODY_LIMIT * 4, BODY_LIMIT * 64)) {
            String big = "{\"prompt\": \"" + "a".repeat((int) size) + "\"}";
            JsonNode error = client.post("/v1/completions", big).error(413);
            assertEquals("request_too_large", error.path("code").asText());
        }
        try (RawHttp raw = new RawHttp(client.base())) {
            // Announced but not sent: refused by the header alone.
            raw.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100000000\r\n\r\n{\"prompt\"");
            RawHttp.Response r = raw.readResponse(10_000);
            assertEquals(413, r.status(), r.headers() + r.body());
            assertTrue(r.body().contains("request_too_large"), r.body());
        }
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", "hi", "max_tokens", 2)).status());
    }

    // ---- 4: slow senders get a 408 in bounded time; connections per client are capped ----

    @Test
    void headersSentOneByteAtATimeGet408InBoundedTime() throws Exception {
        try (RawHttp raw = new RawHttp(client.base())) {
            long start = System.nanoTime();
            raw.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\n");
            boolean open = true;
            for (int i = 0; i < 40 && open; i++) {
                Thread.sleep(200);
                open = raw.trySend("X");
            }
            String got = raw.readToEnd(10_000);
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertTrue(got.startsWith("HTTP/1.1 408"), got);
            assertTrue(got.contains("\"code\":\"request_timeout\""), got);
            assertTrue(ms < HEADER_TIMEOUT.toMillis() + 3_000, ms + " ms");
        }
    }

    @Test
    void aRequestWithoutItsFinalBlankLineGets408() {
        try (RawHttp raw = new RawHttp(client.base())) {
            raw.send("GET /health HTTP/1.1\r\nHost: x\r\n");
            String got = raw.readToEnd(HEADER_TIMEOUT.toMillisPart() + 5_000);
            assertTrue(got.startsWith("HTTP/1.1 408"), got);
        }
    }

    @Test
    void aBodyThatNeverEndsGets408() {
        try (RawHttp raw = new RawHttp(client.base())) {
            raw.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100\r\n\r\n{\"prompt\": ");
            RawHttp.Response r = raw.readResponse((int) BODY_TIMEOUT.toMillis() + 5_000);
            assertEquals(408, r.status(), r.headers() + r.body());
            assertTrue(r.body().contains("request_timeout"), r.body());
        }
    }

    @Test
    void aKeptAliveIdleConnectionIsNotTimedOut() throws Exception {
        try (RawHttp raw = new RawHttp(client.base())) {
            raw.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
            assertEquals(200, raw.readResponse(10_000).status());
            Thread.sleep(HEADER_TIMEOUT.toMillis() + 1_000);
            raw.send("GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
            assertEquals(200, raw.readResponse(10_000).status());
        }
    }

    @Test
    void connectionsPerClientAddressAreCapped() throws Exception {
        // A server of its own: the shared client's pooled connections would count against the cap.
        try (TestServer capped = TestServer.start(HttpSettings.local().withConnectionLimits(
                new ConnectionLimits(HEADER_TIMEOUT, BODY_TIMEOUT, 1024, PER_CLIENT)), 4, Duration.ZERO)) {
            List<RawHttp> held = new ArrayList<>();
            try {
                for (int i = 0; i < PER_CLIENT; i++) {
                    RawHttp raw = new RawHttp(capped.base);
                    raw.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                    assertEquals(200, raw.readResponse(10_000).status());
                    held.add(raw);
                }
                try (RawHttp extra = new RawHttp(capped.base)) {
                    extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                    RawHttp.Response r = extra.readResponse(10_000);
                    assertEquals(429, r.status(), r.headers() + r.body());
                    assertTrue(r.body().contains("too_many_connections"), r.body());
                }
            } finally {
                held.forEach(RawHttp::close);
            }
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (true) {
                try (RawHttp again = new RawHttp(capped.base)) {
                    again.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                    if (again.readResponse(10_000).status() == 200) {
                        break;
                    }
                }
                assertTrue(System.nanoTime() < deadline, "closed connections are released");
                Thread.sleep(50);
            }
        }
    }

    // ---- 5: the HTTP layer's own errors are OpenAI-shaped; 405 says what is allowed; HEAD works ----

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            501 | BREW /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n
            505 | GET /health HTTP/3.7\\r\\nHost: x\\r\\n\\r\\n
            414 | GET /health?q=LONGURI HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n
            431 | GET /health HTTP/1.1\\r\\nHost: x\\r\\nX-Big: LONGHEADER\\r\\n\\r\\n
            400 | POST /v1/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: abc\\r\\n\\r\\n
            400 | POST /v1/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n
            400 | GET /health HTTP/1.1\\r\\nBadHeaderLine\\r\\n\\r\\n
            """)
    void errorsOfTheHttpLayerAreOpenAiShaped(int status, String request) {
        String bytes = request.replace("\\r\\n", "\r\n").replace("LONGURI", "a".repeat(70_000))
                .replace("LONGHEADER", "b".repeat(70_000));
        try (RawHttp raw = new RawHttp(client.base())) {
            raw.send(bytes);
            RawHttp.Response r = raw.readResponse(10_000);
            assertEquals(status, r.status(), r.headers() + r.body());
            assertTrue(r.hasHeader("Content-Type", "application/json"), r.headers());
            JsonNode error = Client.Reply.parse(r.body()).path("error");
            for (String f : List.of("message", "type", "param", "code")) {
                assertTrue(error.has(f), r.body());
            }
            assertFalse(error.path("message").asText().isBlank(), r.body());
        }
    }

    @Test
    void methodNotAllowedSaysWhatIs() {
        Client.Reply post = client.post("/health", "{}");
        post.error(405);
        assertEquals("GET, HEAD", post.raw().headers().firstValue("Allow").orElse(""));
        Client.Reply get = client.get("/v1/completions");
        get.error(405);
        assertEquals("POST", get.raw().headers().firstValue("Allow").orElse(""));
    }

    @Test
    void headIsAnsweredLikeGetWithoutABody() {
        for (String path : List.of("/health", "/v1/models", "/metrics", "/version")) {
            Client.Reply r = client.send(client.request(path).method("HEAD", HttpRequest.BodyPublishers.noBody()).build());
            assertEquals(200, r.status(), path + ": " + r.body());
            assertEquals("", r.body(), path);
        }
    }

    // ---- 6: JSON bodies only, no permissive CORS ----

    @ParameterizedTest
    @ValueSource(strings = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/octet-stream", "text/json"})
    void bodiesThatAreNotJsonAre415(String type) {
        for (String path : List.of("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize",
                "/v1/load_lora_adapter", "/v1/unload_lora_adapter")) {
            Client.Reply r = client.send(client.request(path).setHeader("Content-Type", type)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 1}")).build());
            assertEquals("unsupported_media_type", r.error(415).path("code").asText(), path);
        }
    }

    @Test
    void aBodyWithoutContentTypeIs415AndJsonWithCharsetIsServed() {
        Client.Reply none = client.send(HttpRequest.newBuilder(client.base().resolve("/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 1}")).build());
        none.error(415);
        Client.Reply json = client.send(client.request("/v1/completions")
                .setHeader("Content-Type", "application/json; charset=utf-8")
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 1}")).build());
        assertEquals(200, json.status(), json.body());
    }

    @Test
    void noCorsHeadersForCrossSiteCallers() {
        Client.Reply r = client.send(client.request("/v1/models").header("Origin", "https://evil.example").GET().build());
        assertEquals(200, r.status());
        assertTrue(r.raw().headers().map().keySet().stream().noneMatch(h -> h.toLowerCase().startsWith("access-control")),
                r.raw().headers().toString());
        Client.Reply preflight = client.send(client.request("/v1/completions").header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "POST").method("OPTIONS", HttpRequest.BodyPublishers.noBody())
                .build());
        preflight.error(405);
        assertTrue(preflight.raw().headers().map().keySet().stream()
                .noneMatch(h -> h.toLowerCase().startsWith("access-control")), preflight.raw().headers().toString());
    }
}
