package io.kvass.worker.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading PEFT adapters: what is accepted, and the error for each thing that is not. */
class LoraLoaderTest {
    private static LoadedModel llama;
    private static LoadedModel qwen;

    @TempDir
    Path tmp;
    private int edits;

    @BeforeAll
    static void load() {
        llama = LoadedModel.load(Fixtures.reference("llama-gqa"));
        qwen = LoadedModel.load(Fixtures.reference("qwen2-bias"));
    }

    @AfterAll
    static void close() {
        llama.close();
        qwen.close();
    }

    private static Path fixture(String tag) {
        return Fixtures.reference("llama-gqa").resolve(tag);
    }

    private LoraLoader loader(ModelConfig base, int maxRank) {
        return new LoraLoader(base, maxRank, List.of(tmp, Fixtures.root()));
    }

    private Path edited(Consumer<ObjectNode> edit) {
        return AdapterFiles.copy(fixture("adapter-a"), tmp.resolve("edited-" + edits++), edit);
    }

    private AdapterLoadException rejects(Path dir, String... fragments) {
        return rejects(loader(llama.config(), 64), dir, fragments);
    }

    private static AdapterLoadException rejects(LoraLoader loader, Path dir, String... fragments) {
        AdapterLoadException e = assertThrows(AdapterLoadException.class, () -> loader.load(dir));
        assertTrue(e.getMessage().contains(dir.toString()), "names the adapter: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "expected '" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    @Test
    void loadsTheFixtureAdapters() {
        LoraWeights a = loader(llama.config(), 16).load(fixture("adapter-a"));
        assertEquals(2 * 7, a.modules().size());
        assertEquals(8, a.maxRank());
        LoraModule q = a.module(1, LoraTarget.Q_PROJ).orElseThrow();
        assertEquals(2f, q.scale()); // alpha 16 / r 8
        assertEquals(64, q.inDim());
        assertEquals(64, q.outDim());
        LoraModule down = a.module(0, LoraTarget.DOWN_PROJ).orElseThrow();
        assertEquals(176, down.inDim());

        LoraWeights b = loader(llama.config(), 16).load(fixture("adapter-b"));
        assertEquals(2 * 2, b.modules().size());
        assertTrue(b.module(0, LoraTarget.K_PROJ).isEmpty());
        assertEquals(2f, b.module(0, LoraTarget.V_PROJ).orElseThrow().scale()); // alpha 8 / r 4
        assertNotEquals(a.fingerprint(), b.fingerprint());
        assertEquals(a.fingerprint(), loader(llama.config(), 16).load(fixture("adapter-a")).fingerprint());
    }

    @Test
    void rejectsDora() {
        rejects(edited(c -> c.put("use_dora", true)), "DoRA");
    }

    @Test
    void rejectsModulesToSave() {
        rejects(edited(c -> c.putArray("modules_to_save").add("lm_head")), "modules_to_save");
    }

    @Test
    void acceptsEmptyModulesToSave() {
        loader(llama.config(), 8).load(edited(c -> c.putArray("modules_to_save")));
    }

    @Test
    void rejectsRankAboveTheMaximum() {
        rejects(loader(llama.config(), 4), fixture("adapter-a"), "rank 8", "maximum LoRA rank 4");
    }

    @Test
    void rejectsATargetModuleTheBaseLacks() {
        rejects(edited(c -> c.putArray("target_modules").add("q_proj").add("c_attn")), "target module 'c_attn'");
        rejects(edited(c -> c.put("target_modules", ".*\\.lm_head")), "target module '.*\\.lm_head'");
    }

    @Test
    void rejectsAnAdapterForAnotherModel() {
        // adapter-a was trained for llama-gqa (hidden 64); qwen2-bias has hidden 96 and 3 layers
        rejects(loader(qwen.config(), 64), fixture("adapter-a"), "q_proj.lora_A.weight' has shape [8, 64]", "imply [8, 96]");
    }

    @Test
    void rejectsWeightsThatDisagreeWithTheConfig() {
        rejects(edited(c -> c.put("r", 4)), "has shape [8, 64]", "[4, 64]");
        rejects(AdapterFiles.copy(fixture("adapter-b"), tmp.resolve("more-targets"),
                c -> c.putArray("target_modules").add("q_proj").add("k_proj").add("v_proj")), "lacks its lora_A/lora_B");
        rejects(AdapterFiles.copy(fixture("adapter-a"), tmp.resolve("fewer-targets"),
                c -> c.putArray("target_modules").add("q_proj")), "which adapter_config.json does not target");
    }

    @Test
    void rejectsUnsupportedBiasAndPeftType() {
        rejects(edited(c -> c.put("bias", "lora_only")), "bias='lora_only'");
        rejects(edited(c -> c.put("peft_type", "PREFIX_TUNING")), "only LORA");
        rejects(edited(c -> c.put("fan_in_fan_out", true)), "fan_in_fan_out");
        rejects(edited(c -> c.remove("r")), "r is missing");
    }

    @Test
    void rejectsStrayTensors() throws IOException {
        Path dir = AdapterFiles.random(tmp.resolve("stray"), llama.config(), 4, List.of(LoraTarget.Q_PROJ), List.of(0, 1),
                DType.F32, 1, c -> { });
        Map<String, AdapterFiles.T> tensors = new java.util.LinkedHashMap<>();
        tensors.put(AdapterFiles.tensorName(0, LoraTarget.Q_PROJ, 'A'), new AdapterFiles.T(new long[] {4, 64}, new float[256], DType.F32));
        tensors.put(AdapterFiles.tensorName(0, LoraTarget.Q_PROJ, 'B'), new AdapterFiles.T(new long[] {64, 4}, new float[256], DType.F32));
        tensors.put("base_model.model.lm_head.lora_A.weight", new AdapterFiles.T(new long[] {4, 64}, new float[256], DType.F32));
        AdapterFiles.writeSafetensors(dir.resolve(LoraLoader.WEIGHTS), tensors);
        rejects(dir, "unexpected tensor 'base_model.model.lm_head.lora_A.weight'");
    }

    @Test
    void rejectsMissingFiles() throws IOException {
        rejects(tmp.resolve("nowhere"), "does not exist");
        Path noWeights = edited(c -> { });
        Files.delete(noWeights.resolve(LoraLoader.WEIGHTS));
        rejects(noWeights, "missing adapter_model.safetensors");
        Files.writeString(noWeights.resolve("adapter_model.bin"), "pickle");
        rejects(noWeights, "adapter_model.bin");
        Path noConfig = AdapterFiles.copy(fixture("adapter-b"), tmp.resolve("no-config"), c -> { });
        Files.delete(noConfig.resolve(LoraLoader.CONFIG));
        rejects(noConfig, "missing adapter_config.json");
    }

    @Test
    void rejectsPathsOutsideTheAllowedRoots() throws IOException {
        Path allowed = Files.createDirectories(tmp.resolve("allowed"));
        Path outside = AdapterFiles.copy(fixture("adapter-a"), tmp.resolve("outside"), c -> { });
        LoraLoader loader = new LoraLoader(llama.config(), 64, List.of(allowed));
        rejects(loader, outside, "not under an allowed directory");
        rejects(loader, allowed.resolve("..").resolve("outside"), "not under an allowed directory");
        Path link = Files.createSymbolicLink(allowed.resolve("link"), outside);
        rejects(loader, link, "not under an allowed directory");
        rejects(loader, fixture("adapter-a"), "not under an allowed directory");
        // a file inside an allowed directory that links out is refused as well
        Path inside = Files.createDirectories(allowed.resolve("inside"));
        Files.copy(outside.resolve(LoraLoader.CONFIG), inside.resolve(LoraLoader.CONFIG));
        Files.createSymbolicLink(inside.resolve(LoraLoader.WEIGHTS), outside.resolve(LoraLoader.WEIGHTS));
        rejects(loader, inside, "not under an allowed directory");
        rejects(new LoraLoader(llama.config(), 64, List.of()), outside, "not under an allowed directory");
        Path copied = AdapterFiles.copy(fixture("adapter-a"), allowed.resolve("fine"), c -> { });
        assertEquals(copied.toRealPath(), loader.load(copied).dir());
    }

    @Test
    void readsBf16AndF16Weights() {
        for (DType dtype : List.of(DType.BF16, DType.F16, DType.F32)) {
            Path dir = AdapterFiles.random(tmp.resolve(dtype.name()), llama.config(), 4,
                    List.of(LoraTarget.V_PROJ, LoraTarget.DOWN_PROJ), List.of(0, 1), dtype, 7, c -> { });
            LoraWeights w = loader(llama.config(), 8).load(dir);
            LoraModule down = w.module(1, LoraTarget.DOWN_PROJ).orElseThrow();
            assertEquals(176, down.inDim());
            float max = 0;
            for (float v : down.a()) {
                max = Math.max(max, Math.abs(v));
            }
            assertTrue(max > 0.05f && max < 1f, dtype + " values widened: max " + max);
        }
    }

    @Test
    void honoursRsloraLayersAndPatterns() {
        Path dir = AdapterFiles.random(tmp.resolve("layer1"), llama.config(), 4, List.of(LoraTarget.Q_PROJ, LoraTarget.V_PROJ),
                List.of(1), DType.F32, 3, c -> {
                    c.put("use_rslora", true).put("lora_alpha", 8);
                    c.put("layers_to_transform", 1);
                    c.putObject("alpha_pattern").put("v_proj", 2);
                });
        LoraWeights w = loader(llama.config(), 8).load(dir);
        assertTrue(w.module(0, LoraTarget.Q_PROJ).isEmpty());
        assertEquals(4f, w.module(1, LoraTarget.Q_PROJ).orElseThrow().scale()); // 8 / sqrt(4)
        assertEquals(1f, w.module(1, LoraTarget.V_PROJ).orElseThrow().scale()); // 2 / sqrt(4)

        Path regex = AdapterFiles.random(tmp.resolve("regex"), llama.config(), 2, List.of(LoraTarget.K_PROJ), List.of(0),
                DType.F32, 4, c -> c.put("target_modules", "model\\.layers\\.0\\.self_attn\\.k_proj"));
        assertEquals(1, loader(llama.config(), 8).load(regex).modules().size());

        Path ranks = AdapterFiles.random(tmp.resolve("ranks"), llama.config(), 2, List.of(LoraTarget.UP_PROJ), List.of(0, 1),
                DType.F32, 5, c -> c.putObject("rank_pattern").put("layers.1.mlp.up_proj", 6));
        var e = assertThrows(AdapterLoadException.class, () -> loader(llama.config(), 8).load(ranks));
        assertTrue(e.getMessage().contains("[2, 64] but the base model and rank imply [6, 64]"), e.getMessage());
        assertFalse(e.getMessage().contains("layers.0"), e.getMessage());
    }
}
