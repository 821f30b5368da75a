package io.kvass.cluster.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.testing.Fixtures;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kvass generate} end to end: the contract other checks rely on. */
class GenerateCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static List<JsonNode> generate(String... args) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        String[] full = new String[args.length + 1];
        full[0] = "generate";
        System.arraycopy(args, 0, full, 1, args.length);
        GenerateCommand.run(full, new PrintStream(out, true, StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8).lines().map(l -> {
            try {
                return JSON.readTree(l);
            } catch (Exception e) {
                throw new AssertionError("not a JSON line: " + l, e);
            }
        }).toList();
    }

    @ParameterizedTest
    @ValueSource(strings = {"stories260K", "stories260K-llama2c"})
    void storiesGreedyFromBosIsLlama2cGoldenOutput(String dir) throws Exception {
        Path model = Fixtures.root().resolve("models").resolve(dir);
        JsonNode expected = JSON.readTree(model.resolve("expected.json").toFile());
        List<JsonNode> lines = generate("--model", model.toString(), "--prompt-ids", "1", "--max-tokens", "200",
                "--temperature", "0", "--json");
        assertEquals(1, lines.size());
        JsonNode line = lines.getFirst();
        assertEquals(expected.path("greedy_ids"), line.path("token_ids"));
        assertEquals(expected.path("expected_text").asText(), line.path("text").asText());
        assertEquals("length", line.path("finish_reason").asText());
        assertEquals("[1]", line.path("prompt_ids").toString());
    }

    @Test
    void severalPromptsRunAsOneBatchAndTextPromptsGetBos() throws Exception {
        Path model = Fixtures.stories260K();
        List<JsonNode> lines = generate("--model", model.toString(), "--prompt", "Once upon a time", "--prompt-ids", "1",
                "--prompt", "The cat", "--max-tokens", "20", "--temperature", "0", "--json");
        assertEquals(3, lines.size());
        assertEquals(1, lines.get(0).path("prompt_ids").get(0).asInt(), "BOS first");
        assertEquals(20, lines.get(1).path("token_ids").size());
        JsonNode expected = JSON.readTree(model.resolve("expected.json").toFile()).path("greedy_ids");
        for (int i = 0; i < 20; i++) {
            assertEquals(expected.get(i), lines.get(1).path("token_ids").get(i));
        }
    }

    @Test
    void anAdapterAppliesToEveryPromptAndBadOnesAreNamed(@TempDir Path tmp) throws Exception {
        String model = Fixtures.stories260K().toString();
        Path llamaGqa = Fixtures.reference("llama-gqa");
        // llama-gqa's adapter-b (q_proj, v_proj) fits the shapes of stories260K's first two layers.
        Path adapterB = Files.createDirectories(tmp.resolve("adapter-b"));
        Files.writeString(adapterB.resolve(LoraLoader.CONFIG), Files.readString(llamaGqa.resolve("adapter-b")
                .resolve(LoraLoader.CONFIG)).replace("\"layers_to_transform\": null", "\"layers_to_transform\": [0, 1]"));
        Files.copy(llamaGqa.resolve("adapter-b").resolve(LoraLoader.WEIGHTS), adapterB.resolve(LoraLoader.WEIGHTS));
        List<JsonNode> base = generate("--model", model, "--prompt-ids", "1", "--prompt", "Once upon a time",
                "--max-tokens", "16", "--temperature", "0", "--json");
        List<JsonNode> adapted = generate("--model", model, "--prompt-ids", "1", "--prompt", "Once upon a time",
                "--max-tokens", "16", "--temperature", "0", "--json", "--adapter", adapterB.toString());
        assertEquals(2, adapted.size());
        for (int i = 0; i < 2; i++) {
            assertEquals(base.get(i).path("prompt_ids"), adapted.get(i).path("prompt_ids"));
            assertTrue(!base.get(i).path("token_ids").equals(adapted.get(i).path("token_ids")), "prompt " + i);
        }
        String a = llamaGqa.resolve("adapter-a").toString();
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--adapter", a,
                "--max-lora-rank", "4")).getMessage().contains("rank 8 of model.layers.0"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--adapter", a))
                .getMessage().contains("has shape"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--adapter",
                "/no/such/adapter")).getMessage().startsWith("--adapter: LoRA adapter /no/such/adapter"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1",
                "--max-lora-rank", "8")).getMessage().contains("--max-lora-rank applies to --adapter only"));
    }

    @Test
    void badInputsNameTheProblem() {
        String model = Fixtures.stories260K().toString();
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--bogus", "x"))
                .getMessage().contains("unknown flag --bogus"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1,x"))
                .getMessage().contains("--prompt-ids"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--temperature", "-1"))
                .getMessage().contains("temperature"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model))
                .getMessage().contains("--prompt"));
        assertTrue(assertThrows(ModelLoadException.class, () -> generate("--model", "/no/such/dir", "--prompt-ids", "1"))
                .getMessage().contains("/no/such/dir"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--device", "tpu"))
                .getMessage().contains("unknown device 'tpu'"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1",
                "--gpu-memory-utilization", "0.5")).getMessage().contains("--device cuda only"));
        assertTrue(assertThrows(CliException.class, () -> generate("--model", model, "--prompt-ids", "1", "--device",
                "cuda", "--gpu-memory-utilization", "1.5")).getMessage().contains("(0, 1]"));
    }
}
