package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Multi-LoRA serving over HTTP: the {@code model} field picks the base model or an adapter, adapters
 * load and unload at runtime (vLLM's endpoints) while other requests stream, bad adapters are refused
 * with the reason, and every served completion equals offline generation with the same adapter.
 * Steps are slowed to ~20 ms so that tests can act while requests run.
 */
class LoraServingTest {
    private static final Duration STEP = Duration.ofMillis(20);
    private static final Map<String, String> NAMES = Map.of("base", LoraFixture.MODEL, "adapter-a", "a", "adapter-b", "b");
    private static Path tmp;
    private static Path allowed;
    private static TestServer server;
    private static Client client;
    private static LoraFixture.Offline offline;
    private static List<int[]> prompts;

    @BeforeAll
    static void start() throws IOException {
        tmp = Files.createTempDirectory("kvass-lora-serving");
        allowed = Files.createDirectories(tmp.resolve("adapters"));
        Path model = LoraFixture.modelDir(tmp);
        offline = LoraFixture.offline(model);
        prompts = LoraFixture.prompts();
        server = TestServer.withLora(model, LoraFixture.MODEL, new LoraOptions(new LoraCapacity(2, 8), 3,
                List.of(Fixtures.reference(LoraFixture.VARIANT), allowed)), 16, STEP);
        client = server.client();
        // As --lora-modules does at start; "b" arrives through the API.
        server.adapters.orElseThrow().register("a", LoraFixture.adapter("adapter-a"));
        Client.Reply loaded = load("b", LoraFixture.adapter("adapter-b"));
        assertEquals(200, loaded.status(), loaded.body());
        assertEquals("Success: LoRA adapter 'b' added successfully.", loaded.body());
    }

    @AfterAll
    static void stop() throws IOException {
        server.close();
        try (Stream<Path> files = Files.walk(tmp)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private static Client.Reply load(String name, Path dir) {
        return client.post("/v1/load_lora_adapter", Map.of("lora_name", name, "lora_path", dir.toString()));
    }

    private static Map<String, Object> completion(String model, int prompt, boolean stream) {
        Map<String, Object> body = new HashMap<>(Map.of("model", model, "prompt", ids(prompts.get(prompt)),
                "max_tokens", LoraFixture.MAX_TOKENS, "temperature", 0, "ignore_eos", true));
        if (stream) {
            body.put("stream", true);
        }
        return body;
    }

    private static List<Integer> ids(int[] ids) {
        return java.util.Arrays.stream(ids).boxed().toList();
    }

    private static String text(Client.Reply r) {
        assertEquals(200, r.status(), r.body());
        if (r.body().startsWith("data: ")) {
            StringBuilder text = new StringBuilder();
            r.chunks().forEach(c -> c.path("choices").forEach(ch -> text.append(ch.path("text").asText())));
            return text.toString();
        }
        return r.json().path("choices").get(0).path("text").asText();
    }

    @Test
    void eachAdapterServesWhatOfflineGenerationGives() {
        // The offline base run reproduces transformers' reference: the comparison below stands on an oracle.
        for (int i = 0; i < prompts.size(); i++) {
            assertArrayEquals(LoraFixture.baseReference().get(i), offline.ids().get("base").get(i), "base prompt " + i);
        }
        // Base first, then the adapters on the same prompt: the prefix cache must not hand the base K/V to them.
        for (int i = 0; i < prompts.size(); i++) {
            for (String tag : LoraFixture.TAGS) {
                Client.Reply r = client.post("/v1/completions", completion(NAMES.get(tag), i, false));
                assertEquals(offline.texts().get(tag).get(i), text(r), tag + " prompt " + i);
                assertEquals(NAMES.get(tag), r.json().path("model").asText(), "the response names the adapter");
            }
        }
        // Different adapters give different text: the adapter really applies.
        assertFalse(offline.texts().get("adapter-a").equals(offline.texts().get("base")));
        assertFalse(offline.texts().get("adapter-b").equals(offline.texts().get("adapter-a")));
    }

    @Test
    void mixedConcurrentRequestsForBaseAndBothAdapters() throws Exception {
        record Sent(String tag, int prompt, CompletableFuture<HttpResponse<String>> reply) {
        }
        List<Sent> sent = new ArrayList<>();
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < prompts.size(); i++) {
                for (String tag : LoraFixture.TAGS) {
                    HttpRequest request = client.request("/v1/completions").POST(HttpRequest.BodyPublishers.ofString(
                            Client.JSON.writeValueAsString(completion(NAMES.get(tag), i, round == 1)))).build();
                    sent.add(new Sent(tag, i, client.http().sendAsync(request, HttpResponse.BodyHandlers.ofString())));
                }
            }
        }
        for (Sent s : sent) {
            HttpResponse<String> r = s.reply().get();
            assertEquals(offline.texts().get(s.tag()).get(s.prompt()), text(new Client.Reply(r.statusCode(), r.body(), r)),
                    s.tag() + " prompt " + s.prompt());
        }
        client.idleReplica();
    }

    @Test
    void anAdapterLoadedWhileOthersStreamIsServedAtOnce() {
        try (LiveStream base = LiveStream.open(client, completion(LoraFixture.MODEL, 3, true));
             LiveStream a = LiveStream.open(client, completion("a", 3, true))) {
            base.next();
            a.next();
            Client.Reply loaded = load("b-runtime", LoraFixture.adapter("adapter-b"));
            assertEquals(200, loaded.status(), loaded.body());
            assertTrue(loaded.raw().headers().firstValue("content-type").orElseThrow().startsWith("text/plain"));
            assertTrue(client.replica().path("num_requests_running").asInt() >= 1, "the streams still run");
            assertEquals(offline.texts().get("adapter-b").get(1), text(client.post("/v1/completions",
                    completion("b-runtime", 1, false))));
            assertEquals(offline.texts().get("base").get(3), base.rest());
            assertEquals(offline.texts().get("adapter-a").get(3), a.rest());
            assertEquals("length", a.finishReason());
        }
        Client.Reply again = load("b-runtime", LoraFixture.adapter("adapter-b"));
        assertTrue(again.error(400).path("message").asText().contains("already been loaded"), again.body());
    }

    @Test
    void unloadingAnAdapterInUseLetsItsStreamFinishAndRefusesNewRequests() throws Exception {
        assertEquals(200, load("doomed", LoraFixture.adapter("adapter-b")).status());
        try (LiveStream doomed = LiveStream.open(client, completion("doomed", 2, true))) {
            doomed.next();
            Client.Reply unloaded = client.post("/v1/unload_lora_adapter", Map.of("lora_name", "doomed"));
            assertEquals(200, unloaded.status(), unloaded.body());
            assertEquals("Success: LoRA adapter 'doomed' removed successfully.", unloaded.body());
            JsonNode error = client.post("/v1/completions", completion("doomed", 0, false)).error(404);
            assertEquals("model_not_found", error.path("code").asText());
            assertFalse(modelIds().contains("doomed"));
            assertEquals(offline.texts().get("adapter-b").get(2), doomed.rest(), "the running stream completes");
            assertEquals("length", doomed.finishReason());
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (client.get("/admin/adapters").body().contains("\"doomed\"")) {
            assertTrue(System.nanoTime() < deadline, "the adapter leaves once its request ended");
            Thread.sleep(10);
        }
        assertEquals("lora_adapter_not_found", client.post("/v1/unload_lora_adapter", Map.of("lora_name", "doomed"))
                .error(404).path("code").asText());
        // The name is free again.
        assertEquals(200, load("doomed", LoraFixture.adapter("adapter-a")).status());
        assertEquals(offline.texts().get("adapter-a").get(0), text(client.post("/v1/completions",
                completion("doomed", 0, false))));
        assertEquals(200, client.post("/v1/unload_lora_adapter", Map.of("lora_name", "doomed")).status());
    }

    @Test
    void chatAndTokenizeTakeAnAdapterName() {
        Map<String, Object> chat = Map.of("messages", List.of(Map.of("role", "user", "content", "Once upon a time")),
                "max_tokens", 8, "temperature", 0, "ignore_eos", true);
        Map<String, Object> withA = new HashMap<>(chat);
        withA.put("model", "a");
        JsonNode lora = client.post("/v1/chat/completions", withA).json();
        assertEquals("a", lora.path("model").asText());
        assertEquals(8, lora.path("usage").path("completion_tokens").asInt());
        JsonNode base = client.post("/v1/chat/completions", chat).json();
        assertFalse(base.path("choices").get(0).path("message").path("content").asText()
                .equals(lora.path("choices").get(0).path("message").path("content").asText()));
        assertEquals(client.post("/tokenize", Map.of("prompt", "Once")).json().path("tokens"),
                client.post("/tokenize", Map.of("model", "a", "prompt", "Once")).json().path("tokens"));
    }

    @Test
    void unknownModelsAre404() {
        JsonNode e = client.post("/v1/completions", Map.of("model", "nope", "prompt", List.of(1, 2), "max_tokens", 2))
                .error(404);
        assertEquals("model_not_found", e.path("code").asText());
        assertEquals("model", e.path("param").asText());
        e = client.post("/v1/chat/completions", Map.of("model", "nope", "messages",
                List.of(Map.of("role", "user", "content", "hi")))).error(404);
        assertEquals("model_not_found", e.path("code").asText());
    }

    @Test
    void pathsOutsideTheRootsLearnNothingAndNamesAreRestricted() {
        String pid = Long.toString(ProcessHandle.current().pid());
        for (String probe : java.util.List.of("/etc/passwd", "/proc/self", "/no/such/place", allowed + "/../../etc")) {
            JsonNode error = client.post("/v1/load_lora_adapter", Map.of("lora_name", "probe", "lora_path", probe))
                    .error(400);
            assertEquals("LoRA adapter " + probe + ": not under an allowed directory", error.path("message").asText());
            assertFalse(error.path("message").asText().contains(pid), error.toString());
        }
        for (String name : java.util.List.of("a\u0000b", "<img src=x>", "../up", "x".repeat(10_000))) {
            JsonNode error = client.post("/v1/load_lora_adapter", Map.of("lora_name", name, "lora_path",
                    allowed.toString())).error(400);
            assertEquals("lora_name", error.path("param").asText());
            assertFalse(error.path("message").asText().contains(name), "the name is not echoed: " + error);
        }
    }

    @Test
    void invalidAdaptersAreRefusedNamingTheProblem() throws IOException {
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Path missing = Files.createDirectories(allowed.resolve("missing-weights"));
        Files.copy(LoraFixture.adapter("adapter-b").resolve(LoraLoader.CONFIG), missing.resolve(LoraLoader.CONFIG));
        Map<Path, String> cases = Map.of(
                LoraFixture.adapterCopy(allowed, "dora", "adapter-b", "\"use_dora\": false", "\"use_dora\": true"),
                "DoRA adapters are not supported",
                LoraFixture.adapterCopy(allowed, "to-save", "adapter-b", "\"modules_to_save\": null",
                        "\"modules_to_save\": [\"lm_head\"]"), "modules_to_save",
                LoraFixture.adapterCopy(allowed, "rank16", "adapter-b", "\"r\": 4", "\"r\": 16"),
                "exceeds the maximum LoRA rank 8",
                LoraFixture.adapterCopy(allowed, "shape", "adapter-b", "\"r\": 4", "\"r\": 2"), "has shape [4, 64]",
                LoraFixture.adapterCopy(allowed, "ia3", "adapter-b", "\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\""),
                "only LORA adapters are supported",
                LoraFixture.adapterCopy(outside, "elsewhere", "adapter-b", "", ""),
                "not under an allowed directory",
                missing, "missing adapter_model.safetensors",
                allowed.resolve("no-such-adapter"), "does not exist");
        int i = 0;
        for (var c : cases.entrySet()) {
            String name = "bad-" + i++;
            JsonNode error = load(name, c.getKey()).error(400);
            assertTrue(error.path("message").asText().contains(c.getValue()), c.getValue() + " in " + error);
            assertTrue(error.path("message").asText().contains(c.getKey().toString()), "names the directory: " + error);
            assertEquals("invalid_lora_adapter", error.path("code").asText());
            assertEquals("lora_path", error.path("param").asText());
            assertEquals(404, client.post("/v1/completions", Map.of("model", name, "prompt", List.of(1), "max_tokens", 1))
                    .status());
        }
        assertFalse(modelIds().stream().anyMatch(id -> id.startsWith("bad-")));

        assertEquals("lora_path", client.post("/v1/load_lora_adapter", Map.of("lora_name", "x")).error(400)
                .path("param").asText());
        assertTrue(client.post("/v1/load_lora_adapter", Map.of("lora_name", LoraFixture.MODEL, "lora_path",
                LoraFixture.adapter("adapter-a").toString())).error(400).path("message").asText().contains("served model"));
        assertTrue(load("a", LoraFixture.adapter("adapter-b")).error(400).path("message").asText()
                .contains("already been loaded"));
        assertEquals(400, client.post("/v1/load_lora_adapter", Map.of("lora_name", "x", "lora_path", "/y", "extra", 1))
                .status());
        assertEquals(400, client.post("/v1/unload_lora_adapter", Map.of()).status());
        assertEquals(404, client.post("/v1/unload_lora_adapter", Map.of("lora_name", "never-loaded")).status());
        assertEquals(405, client.get("/v1/load_lora_adapter").status());
    }

    @Test
    void modelsListAdaptersWithTheirParent() throws IOException {
        Map<String, JsonNode> cards = new HashMap<>();
        client.get("/v1/models").json().path("data").forEach(m -> cards.put(m.path("id").asText(), m));
        assertTrue(cards.get(LoraFixture.MODEL).path("parent").isNull());
        for (String name : List.of("a", "b")) {
            JsonNode card = cards.get(name);
            assertEquals("model", card.path("object").asText());
            assertEquals(LoraFixture.MODEL, card.path("parent").asText());
            assertEquals(LoraFixture.adapter(name.equals("a") ? "adapter-a" : "adapter-b").toRealPath().toString(),
                    card.path("root").asText());
        }
        JsonNode admin = client.get("/admin/adapters").json().path("adapters");
        assertTrue(StreamSupport.stream(admin.spliterator(), false).anyMatch(a -> a.path("name").asText().equals("a")
                && a.path("model").asText().equals(LoraFixture.MODEL)), admin.toString());
    }

    /** The {@code vllm:lora_requests_info} line once it satisfies {@code condition} (or the last one after 10 s). */
    private String loraInfoOnce(java.util.function.Predicate<String> condition) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (true) {
            String info = client.get("/metrics").body().lines().filter(l -> l.startsWith("vllm:lora_requests_info{"))
                    .findFirst().orElseThrow();
            if (condition.test(info) || System.nanoTime() > deadline) {
                return info;
            }
            Thread.onSpinWait();
        }
    }

    @Test
    void metricsCountTokensPerAdapterAndShowRunningAdapters() {
        String generated = "kvass:lora_generation_tokens_total{lora_name=\"a\",model_name=\"" + LoraFixture.MODEL + "\"}";
        double before = orZero(client.metric(generated));
        assertEquals(200, client.post("/v1/completions", completion("a", 0, false)).status());
        assertEquals(before + LoraFixture.MAX_TOKENS, client.metric(generated));
        try (LiveStream a = LiveStream.open(client, completion("a", 3, true))) {
            a.next();
            // NOTE: adapter residency reaches the gateway in the replica's next load report
            String info = loraInfoOnce(s -> s.contains("running_lora_adapters=\"a\""));
            assertTrue(info.contains("max_lora=\"2\""), info);
            assertTrue(info.contains("running_lora_adapters=\"a\""), info);
            assertTrue(info.contains("waiting_lora_adapters=\"\""), info);
            a.rest();
        }
        String info = loraInfoOnce(s -> s.contains("running_lora_adapters=\"\""));
        assertTrue(info.contains("running_lora_adapters=\"\""), info);
        assertTrue(client.metric("kvass:lora_request_success_total{finished_reason=\"length\",lora_name=\"a\",model_name=\""
                + LoraFixture.MODEL + "\"}") >= 2);
    }

    private static double orZero(double v) {
        return Double.isNaN(v) ? 0 : v;
    }

    private static List<String> modelIds() {
        return StreamSupport.stream(client.get("/v1/models").json().path("data").spliterator(), false)
                .map(m -> m.path("id").asText()).toList();
    }

    /** A completions stream read chunk by chunk as it arrives. */
    private static final class LiveStream implements AutoCloseable {
        private final Stream<String> lines;
        private final Iterator<String> it;
        private final StringBuilder text = new StringBuilder();
        private String finishReason = "";

        private LiveStream(Stream<String> lines) {
            this.lines = lines;
            this.it = lines.iterator();
        }

        static LiveStream open(Client client, Map<String, Object> body) {
            try {
                HttpRequest request = client.request("/v1/completions")
                        .POST(HttpRequest.BodyPublishers.ofString(Client.JSON.writeValueAsString(body))).build();
                HttpResponse<Stream<String>> r = client.http().send(request, HttpResponse.BodyHandlers.ofLines());
                assertEquals(200, r.statusCode());
                return new LiveStream(r.body());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }

        /** The next data chunk; false at [DONE]. */
        boolean next() {
            while (it.hasNext()) {
                String line = it.next();
                if (!line.startsWith("data: ")) {
                    continue;
                }
                String data = line.substring("data: ".length());
                if (data.equals("[DONE]")) {
                    return false;
                }
                try {
                    JsonNode chunk = Client.JSON.readTree(data);
                    assertFalse(chunk.has("error"), chunk.toString());
                    for (JsonNode choice : chunk.path("choices")) {
                        text.append(choice.path("text").asText());
                        if (choice.hasNonNull("finish_reason")) {
                            finishReason = choice.path("finish_reason").asText();
                        }
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                return true;
            }
            throw new AssertionError("the stream ended without [DONE]");
        }

        /** Reads to the end; the whole text. */
        String rest() {
            while (next()) {
                // keep reading
            }
            return text.toString();
        }

        String finishReason() {
            return finishReason;
        }

        @Override
        public void close() {
            lines.close();
        }
    }
}
