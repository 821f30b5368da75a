package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.guard.ConnectionLimits;
import java.math.BigInteger;
import java.net.http.HttpRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Mutated bodies for every route, from a fixed seed (issue 19): never a 5xx, never a dropped
 * connection, every error in OpenAI's shape, every stream ended with [DONE]; afterwards the server is
 * healthy and the KV pool is empty. {@code -Dkvass.fuzz.requests=N} (default 3000) and
 * {@code -Dkvass.fuzz.seed=S} run it longer or elsewhere.
 */
class FuzzTest {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final int REQUESTS = Integer.getInteger("kvass.fuzz.requests", 3000);
    private static final long SEED = Long.getLong("kvass.fuzz.seed", 19);
    private static final int THREADS = 4;

    private record Route(String method, String path, ObjectNode body) {
    }

    private static final List<Route> ROUTES = routes();

    private static List<Route> routes() {
        List<Route> r = new ArrayList<>();
        r.add(new Route("POST", "/v1/completions", obj(Map.of("prompt", "Once upon a time", "max_tokens", 8))));
        r.add(new Route("POST", "/v1/completions", obj(Map.of("prompt", List.of(1, 403, 407), "max_tokens", 6,
                "echo", true, "temperature", 0.7, "top_p", 0.9, "seed", 7))));
        r.add(new Route("POST", "/v1/completions", obj(Map.of("prompt", List.of("The dog", List.of(1, 2, 3)),
                "max_tokens", 5, "n", 2, "stream", true, "stream_options", Map.of("include_usage", true)))));
        r.add(new Route("POST", "/v1/completions", obj(Map.of("prompt", "Lily", "max_tokens", 6, "logprobs", 2,
                "stop", List.of("."), "stop_token_ids", List.of(13), "min_tokens", 1, "ignore_eos", false))));
        r.add(new Route("POST", "/v1/chat/completions", obj(Map.of("messages", List.of(Map.of("role", "user",
                "content", "Hi")), "max_tokens", 6))));
        r.add(new Route("POST", "/v1/chat/completions", obj(Map.of("messages", List.of(Map.of("role", "system",
                "content", "Be brief."), Map.of("role", "user", "content", List.of(Map.of("type", "text", "text",
                "Tell a story")))), "max_completion_tokens", 6, "stream", true, "logprobs", true, "top_logprobs", 2))));
        r.add(new Route("POST", "/tokenize", obj(Map.of("prompt", "Once upon a time"))));
        r.add(new Route("POST", "/tokenize", obj(Map.of("messages", List.of(Map.of("role", "user", "content", "x"))))));
        r.add(new Route("POST", "/detokenize", obj(Map.of("tokens", List.of(1, 403, 407)))));
        r.add(new Route("POST", "/v1/load_lora_adapter", obj(Map.of("lora_name", "a", "lora_path", "/tmp/a"))));
        r.add(new Route("POST", "/v1/unload_lora_adapter", obj(Map.of("lora_name", "a"))));
        for (String get : List.of("/health", "/version", "/metrics", "/v1/models", "/admin/replicas", "/admin/adapters")) {
            r.add(new Route("GET", get, null));
        }
        return List.copyOf(r);
    }

    private static ObjectNode obj(Map<String, ?> map) {
        return Client.JSON.valueToTree(map);
    }

    @Test
    void mutatedRequestsNeverBreakTheServer() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local().withLimits(256 * 1024, 10_000)
                .withConnectionLimits(new ConnectionLimits(Duration.ofSeconds(2), Duration.ofSeconds(5), 1024, 256)),
                64, Duration.ZERO)) {
            Client client = server.client();
            Map<String, AtomicInteger> statuses = new ConcurrentHashMap<>();
            List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int thread = t;
                done.add(pool.submit(() -> {
                    Random random = new Random(SEED * 1_000 + thread);
                    for (int i = thread; i < REQUESTS && failures.size() < 20; i += THREADS) {
                        String what = "";
                        try {
                            what = oneRequest(client, random, statuses);
                        } catch (AssertionError | RuntimeException e) {
                            failures.add("#" + i + " " + what + ": " + e);
                        }
                    }
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            pool.shutdown();
            if (!failures.isEmpty()) {
                fail(failures.size() + " failures, e.g.:\n" + String.join("\n", failures.subList(0,
                        Math.min(10, failures.size()))));
            }
            assertTrue(statuses.keySet().stream().noneMatch(s -> s.startsWith("5")), statuses.toString());
            assertTrue(statuses.getOrDefault("200", new AtomicInteger()).get() > REQUESTS / 20, statuses.toString());
            assertTrue(statuses.getOrDefault("400", new AtomicInteger()).get() > REQUESTS / 5, statuses.toString());
            assertEquals(200, client.get("/health").status());
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            JsonNode replica = client.replica();
            while (replica.path("num_free_kv_blocks").asInt() != replica.path("num_kv_blocks").asInt()
                    || replica.path("num_requests_running").asInt() + replica.path("num_requests_waiting").asInt() > 0) {
                assertTrue(System.nanoTime() < deadline, "the KV pool empties: " + replica);
                Thread.sleep(50);
                replica = client.replica();
            }
            assertEquals(0, server.server.streams().size());
            System.out.println("fuzz: " + REQUESTS + " requests, seed " + SEED + ", statuses " + statuses);
        }
    }

    /** One mutated request; returns a description of it for failure messages. */
    private static String oneRequest(Client client, Random random, Map<String, AtomicInteger> statuses) {
        Route route = ROUTES.get(random.nextInt(ROUTES.size()));
        String method = route.method();
        String path = route.path();
        String contentType = "application/json";
        String body = route.body() == null ? null : route.body().toString();
        if (route.body() != null) {
            ObjectNode tree = route.body().deepCopy();
            int mutations = 1 + random.nextInt(3);
            for (int m = 0; m < mutations; m++) {
                mutate(tree, random);
            }
            body = tree.toString();
            int textual = random.nextInt(20);
            if (textual == 0) {
                body = body.substring(0, random.nextInt(body.length() + 1));
            } else if (textual == 1) {
                char[] chars = body.toCharArray();
                String noise = "{}[]\",:\\\u0000x9-";
                chars[random.nextInt(chars.length)] = noise.charAt(random.nextInt(noise.length()));
                body = new String(chars);
            } else if (textual == 2) {
                body = body.replaceFirst("\\{", "{\"prompt\": \"dup\", ");
            }
        }
        int routeLevel = random.nextInt(40);
        if (routeLevel == 0) {
            method = method.equals("GET") ? "POST" : "GET";
        } else if (routeLevel == 1) {
            path = path + "/x";
        } else if (routeLevel == 2 && body != null) {
            contentType = List.of("text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8",
                    "application/problem+json").get(random.nextInt(4));
        } else if (routeLevel == 3) {
            method = List.of("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD").get(random.nextInt(5));
        }
        String what = method + " " + path + " " + contentType + " " + (body == null ? "" : abbreviate(body));
        HttpRequest.Builder b = client.request(path).setHeader("Content-Type", contentType);
        HttpRequest request = switch (method) {
            case "GET" -> b.GET().build();
            case "HEAD" -> b.method("HEAD", HttpRequest.BodyPublishers.noBody()).build();
            default -> b.method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body)).build();
        };
        Client.Reply reply;
        try {
            reply = client.send(request);
        } catch (RuntimeException e) {
            throw new AssertionError("the connection failed: " + e, e);
        }
        statuses.computeIfAbsent(Integer.toString(reply.status()), k -> new AtomicInteger()).incrementAndGet();
        assertTrue(reply.status() < 500, what + " -> " + reply.status() + " " + reply.body());
        if (reply.status() >= 400) {
            if (!method.equals("HEAD")) {
                reply.error(reply.status());
            }
        } else if (reply.raw().headers().firstValue("content-type").orElse("").startsWith("text/event-stream")) {
            List<String> events = reply.events();
            assertEquals("[DONE]", events.getLast(), what + " -> stream without [DONE]: " + reply.body());
        }
        return what;
    }

    private static String abbreviate(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }

    /** Changes one thing in the body: a field's value, a field removed or added, deep inside or at the top. */
    private static void mutate(ObjectNode tree, Random random) {
        List<String> fields = new ArrayList<>();
        for (Iterator<String> it = tree.fieldNames(); it.hasNext(); ) {
            fields.add(it.next());
        }
        int op = random.nextInt(10);
        if (op == 0 && !fields.isEmpty()) {
            tree.remove(fields.get(random.nextInt(fields.size())));
        } else if (op == 1) {
            tree.set(List.of("n", "max_tokens", "temperature", "best_of", "suffix", "user", "priority", "logit_bias",
                    "response_format", "tools", "unknown_field", "top_k", "presence_penalty", "add_special_tokens",
                    "skip_special_tokens", "min_p", "repetition_penalty").get(random.nextInt(17)), value(random));
        } else if (!fields.isEmpty()) {
            String f = fields.get(random.nextInt(fields.size()));
            JsonNode v = tree.get(f);
            if (v.isArray() && !v.isEmpty() && random.nextBoolean()) {
                ArrayNode a = (ArrayNode) v;
                int i = random.nextInt(a.size());
                if (a.get(i).isObject() && random.nextBoolean()) {
                    mutate((ObjectNode) a.get(i), random);
                } else {
                    a.set(i, value(random));
                }
            } else {
                tree.set(f, value(random));
            }
        }
    }

    private static JsonNode value(Random random) {
        return switch (random.nextInt(24)) {
            case 0 -> F.nullNode();
            case 1 -> F.numberNode(new BigInteger("18446744073709552019"));
            case 2 -> F.numberNode(new BigInteger("9223372036854775808"));
            case 3 -> F.numberNode(-1);
            case 4 -> F.numberNode(0);
            case 5 -> F.numberNode(random.nextInt(600));
            case 6 -> F.numberNode(2147483648L);
            case 7 -> F.numberNode(1e300);
            case 8 -> F.numberNode(-0.5);
            case 9 -> F.numberNode(1.5);
            case 10 -> F.textNode("");
            case 11 -> F.textNode("x".repeat(random.nextInt(3000)));
            case 12 -> F.textNode("\u0000<script>../../etc/passwd\ud83d\ude00");
            case 13 -> F.booleanNode(random.nextBoolean());
            case 14 -> F.objectNode();
            case 15 -> F.arrayNode();
            case 16 -> F.arrayNode().add(1).add(new BigInteger("18446744073709552019"));
            case 17 -> F.arrayNode().add(F.arrayNode().add(1).add(2)).add(F.arrayNode());
            case 18 -> F.arrayNode().add("a").add(3).add(F.nullNode());
            case 19 -> nested(random.nextInt(80));
            case 20 -> F.objectNode().put("role", "user").put("content", "hi");
            case 21 -> F.arrayNode().add(F.objectNode().put("role", "wizard").put("content", 5));
            case 22 -> F.numberNode(random.nextInt(4));
            default -> F.textNode("Once upon a time");
        };
    }

    private static JsonNode nested(int depth) {
        JsonNode n = F.arrayNode();
        for (int i = 0; i < depth; i++) {
            n = F.arrayNode().add(n);
        }
        return n;
    }
}
