package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A JDK HttpClient speaking to a test server: JSON in, JSON or SSE events out. */
final class Client {
    static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    private final URI base;
    private Optional<String> apiKey = Optional.empty();

    Client(URI base) {
        this.base = base;
    }

    Client withKey(String key) {
        Client c = new Client(base);
        c.apiKey = Optional.of(key);
        return c;
    }

    record Reply(int status, String body, HttpResponse<String> raw) {
        JsonNode json() {
            try {
                return JSON.readTree(body);
            } catch (IOException e) {
                throw new AssertionError("not JSON (" + status + "): " + body, e);
            }
        }

        static JsonNode parse(String body) {
            try {
                return JSON.readTree(body);
            } catch (IOException e) {
                throw new AssertionError("not JSON: " + body, e);
            }
        }

        /** The data payloads of an SSE body, in order; the last is "[DONE]". */
        List<String> events() {
            List<String> events = new ArrayList<>();
            for (String block : body.split("\n\n")) {
                if (block.isBlank()) {
                    continue;
                }
                assertTrue(block.startsWith("data: "), "SSE line: " + block);
                events.add(block.substring("data: ".length()));
            }
            return events;
        }

        /** The JSON chunks of an SSE body, after checking it ends with [DONE]. */
        List<JsonNode> chunks() {
            List<String> events = events();
            assertEquals("[DONE]", events.getLast(), "stream ends with [DONE]");
            return events.subList(0, events.size() - 1).stream().map(e -> {
                try {
                    return JSON.readTree(e);
                } catch (IOException ex) {
                    throw new UncheckedIOException(ex);
                }
            }).toList();
        }

        /** The error object of an OpenAI error body, after checking its shape and status. */
        JsonNode error(int expectedStatus) {
            assertEquals(expectedStatus, status, body);
            JsonNode error = json().path("error");
            assertTrue(error.isObject(), body);
            for (String f : List.of("message", "type", "param", "code")) {
                assertTrue(error.has(f), "error has " + f + ": " + body);
            }
            assertTrue(error.path("message").isTextual() && !error.path("message").asText().isEmpty(), body);
            return error;
        }
    }

    Reply get(String path) {
        return send(request(path).GET().build());
    }

    Reply post(String path, String body) {
        return send(request(path).POST(HttpRequest.BodyPublishers.ofString(body)).build());
    }

    Reply post(String path, Map<String, ?> body) {
        try {
            return post(path, JSON.writeValueAsString(body));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    Reply post(String path, ObjectNode body) {
        return post(path, body.toString());
    }

    Reply send(HttpRequest request) {
        try {
            HttpResponse<String> r = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
            return new Reply(r.statusCode(), r.body(), r);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(120))
                .header("Content-Type", "application/json");
        apiKey.ifPresent(k -> b.header("Authorization", "Bearer " + k));
        return b;
    }

    URI base() {
        return base;
    }

    HttpClient http() {
        return HTTP;
    }

    /** One sample of a metric series from /metrics, e.g. {@code vllm:prompt_tokens_total{model_name="x"}}. */
    double metric(String series) {
        for (String line : get("/metrics").body().split("\n")) {
            if (line.startsWith(series + " ")) {
                return Double.parseDouble(line.substring(series.length() + 1).trim());
            }
        }
        return Double.NaN;
    }

    JsonNode replica() {
        return get("/admin/replicas").json().path("replicas").get(0);
    }

    /**
     * The replica once {@code condition} holds: its state reaches the gateway in load reports, a few
     * milliseconds after it changed. Fails naming {@code what} after 10 s.
     */
    JsonNode replicaWhen(String what, java.util.function.Predicate<JsonNode> condition) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        JsonNode r = replica();
        while (!condition.test(r)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the replica did not show " + what + ": " + r);
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
            r = replica();
        }
        return r;
    }

    /** The replica once every KV block is free again (every request done). */
    JsonNode idleReplica() {
        return replicaWhen("every KV block free",
                r -> r.path("num_kv_blocks").asInt() == r.path("num_free_kv_blocks").asInt());
    }
}
