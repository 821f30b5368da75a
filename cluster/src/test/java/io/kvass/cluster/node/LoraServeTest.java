package io.kvass.cluster.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.cluster.cli.GenerateCommand;
import io.kvass.cluster.cli.ServeCommand;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.ReferenceCase;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code kvass serve --enable-lora --lora-modules ...} end to end: the configured adapter is served from
 * the start (and after a restart), another loads at runtime from an allowed root, and each serves the
 * same greedy text as {@code kvass generate --adapter}.
 */
class LoraServeTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String MODEL = "llama-gqa";

    @TempDir
    Path tmp;

    /** llama-gqa (no tokenizer of its own) next to a copy of stories260K's tokenizer: the same 512 ids. */
    private Path modelDir() throws IOException {
        Path model = Files.createDirectories(tmp.resolve(MODEL));
        for (String f : List.of("config.json", "generation_config.json", "model.safetensors")) {
            Files.createSymbolicLink(model.resolve(f), Fixtures.reference(MODEL).resolve(f));
        }
        Files.copy(Fixtures.stories260K().resolve("tokenizer.json"), model.resolve("tokenizer.json"));
        return model;
    }

    private static Path adapter(String tag) {
        return Fixtures.reference(MODEL).resolve(tag);
    }

    private ServingNode start(Path model) {
        ServingNode node = ServingNode.start(ServeCommand.settings(new String[] {"serve", "--model", model.toString(), "--host",
            "127.0.0.1", "--port", "0", "--kv-cache-memory", "16M", "--max-num-seqs", "8", "--threads", "1",
            "--enable-lora", "--lora-modules", "a=" + adapter("adapter-a"), "--lora-allowed-roots",
            Fixtures.reference(MODEL).toString(), "--max-loras", "2", "--max-lora-rank", "8"}), UnaryOperator.identity());
        node.awaitReplicas(1, java.time.Duration.ofSeconds(60));
        return node;
    }

    private static HttpResponse<String> post(ServingNode node, String path, Object body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> get(ServingNode node, String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static String served(ServingNode node, String model, int[] prompt) throws Exception {
        HttpResponse<String> r = post(node, "/v1/completions", Map.of("model", model, "prompt",
                Arrays.stream(prompt).boxed().toList(), "max_tokens", 24, "temperature", 0, "ignore_eos", true));
        assertEquals(200, r.statusCode(), r.body());
        JsonNode body = JSON.readTree(r.body());
        assertEquals(model, body.path("model").asText());
        return body.path("choices").get(0).path("text").asText();
    }

    /** {@code kvass generate}'s text for each prompt, with {@code extra} flags (e.g. --adapter DIR). */
    private static List<String> generated(Path model, List<int[]> prompts, String... extra) throws Exception {
        List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--max-tokens", "24",
                "--temperature", "0", "--ignore-eos", "--json", "--threads", "1"));
        for (int[] p : prompts) {
            args.add("--prompt-ids");
            args.add(Arrays.stream(p).mapToObj(Integer::toString).collect(Collectors.joining(",")));
        }
        args.addAll(List.of(extra));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        GenerateCommand.run(args.toArray(String[]::new), new PrintStream(out, true, StandardCharsets.UTF_8));
        List<String> texts = new ArrayList<>();
        for (String line : out.toString(StandardCharsets.UTF_8).split("\n")) {
            texts.add(JSON.readTree(line).path("text").asText());
        }
        return texts;
    }

    @Test
    void servedAdaptersMatchKvassGenerateAndConfiguredOnesSurviveRestart() throws Exception {
        Path model = modelDir();
        List<int[]> prompts = ReferenceCase.load(MODEL, "base").stream().map(ReferenceCase.Prompt::ids).toList();
        Map<String, List<String>> expected = new HashMap<>();
        expected.put(MODEL, generated(model, prompts));
        expected.put("a", generated(model, prompts, "--adapter", adapter("adapter-a").toString(), "--max-lora-rank", "8"));
        expected.put("b", generated(model, prompts, "--adapter", adapter("adapter-b").toString()));
        assertNotEquals(expected.get(MODEL), expected.get("a"));
        assertNotEquals(expected.get("a"), expected.get("b"));

        ServingNode node = start(model);
        try {
            JsonNode models = JSON.readTree(get(node, "/v1/models").body()).path("data");
            assertEquals(2, models.size(), models.toString());
            assertEquals("a", models.get(1).path("id").asText());
            assertEquals(MODEL, models.get(1).path("parent").asText());

            HttpResponse<String> loaded = post(node, "/v1/load_lora_adapter", Map.of("lora_name", "b", "lora_path",
                    adapter("adapter-b").toString()));
            assertEquals(200, loaded.statusCode(), loaded.body());
            HttpResponse<String> outside = post(node, "/v1/load_lora_adapter", Map.of("lora_name", "c", "lora_path",
                    Fixtures.reference("qwen2-bias").resolve("adapter-b").toString()));
            assertEquals(400, outside.statusCode());
            assertTrue(outside.body().contains("not under an allowed directory"), outside.body());

            for (int i = 0; i < prompts.size(); i++) {
                for (String name : List.of(MODEL, "a", "b")) {
                    assertEquals(expected.get(name).get(i), served(node, name, prompts.get(i)), name + " prompt " + i);
                }
            }
            String metrics = get(node, "/metrics").body();
            assertTrue(metrics.contains("max_lora=\"2\""), metrics);
            assertTrue(metrics.contains("kvass:lora_generation_tokens_total{lora_name=\"b\",model_name=\"" + MODEL
                    + "\"} 96.0"), metrics);
        } finally {
            node.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
            node.awaitTermination();
        }

        // --lora-modules are configuration: back after a restart. Runtime loads are not.
        node = start(model);
        try {
            assertEquals(expected.get("a").get(2), served(node, "a", prompts.get(2)));
            HttpResponse<String> gone = post(node, "/v1/completions", Map.of("model", "b", "prompt", List.of(1),
                    "max_tokens", 1));
            assertEquals(404, gone.statusCode());
            assertEquals("model_not_found", JSON.readTree(gone.body()).path("error").path("code").asText());
        } finally {
            node.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
            node.awaitTermination();
        }
    }

    @Test
    void aBadLoraModuleStopsTheStartNamingIt() throws Exception {
        Path model = modelDir();
        Path bad = Files.createDirectories(tmp.resolve("bad"));
        Files.writeString(bad.resolve("adapter_config.json"), Files.readString(adapter("adapter-b")
                .resolve("adapter_config.json")).replace("\"use_dora\": false", "\"use_dora\": true"));
        Files.copy(adapter("adapter-b").resolve("adapter_model.safetensors"), bad.resolve("adapter_model.safetensors"));
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> ServingNode.start(
                ServeCommand.settings(new String[] {"serve", "--model", model.toString(), "--host", "127.0.0.1",
                    "--port", "0", "--kv-cache-memory", "16M", "--threads", "1", "--enable-lora", "--lora-modules",
                    "dora=" + bad})));
        assertTrue(e.getMessage().contains("--lora-modules dora") && e.getMessage().contains("DoRA"), e.getMessage());
    }
}
