package io.kvass.worker.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.Tensor;
import io.kvass.worker.testing.SafeTensorsWriter;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Weights copied to huge-page memory are the mapped file's, and decode as it does. */
class CpuWeightMemoryTest {
    private static final int HIDDEN = 256;
    /** Wider than two tiles plus a tail, so down_proj is tiled (copied in either memory); gate, up and down are over 2 MB. */
    private static final int FFN = 2 * Bf16Matrix.TILE + 64;
    private static final int LAYERS = 2;
    private static final int VOCAB = 320;

    /**
     * NOTE: logits are compared within 1e-5, not bit for bit: the Vector API's lane reduction adds in another
     * order before C2 compiles it, so the first backend to run can differ from the second in the last bits
     * whatever its memory. That the kernels read identical bytes is checked exactly.
     */
    @Test
    void hugePageWeightsAreTheMappedBytesAndGiveTheSameLogits(@TempDir Path dir) throws IOException {
        writeTiedBf16Llama(dir);
        try (LoadedModel model = LoadedModel.load(dir);
             CpuBackend mapped = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.MMAP);
             CpuBackend huge = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.HUGEPAGES)) {
            List<MemorySegment> a = mapped.decodeSegments(), b = huge.decodeSegments();
            assertEquals(a.size(), b.size());
            for (int i = 0; i < a.size(); i++) {
                assertEquals(-1, a.get(i).mismatch(b.get(i)), "matrix " + i);
            }
            List<float[]> fromMapped = logits(mapped), fromHuge = logits(huge);
            for (int i = 0; i < fromMapped.size(); i++) {
                assertArrayEquals(fromMapped.get(i), fromHuge.get(i), 1e-5f, "step " + i);
            }
        }
    }

    /** In bf16: packed weights are a copy in either memory. */
    @Test
    void hugePageWeightsLeaveTheFileAndStartOnHugePageBoundaries(@TempDir Path dir) throws IOException {
        writeTiedBf16Llama(dir);
        try (LoadedModel model = LoadedModel.load(dir);
             CpuBackend mapped = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.MMAP,
                     CpuWeightFormat.BF16);
             CpuBackend huge = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.HUGEPAGES,
                     CpuWeightFormat.BF16)) {
            // q_proj of layer 0 is read where it lies in the file, unless copied.
            assertTrue(mapped.decodeSegments().getFirst().isMapped());
            int large = 0;
            for (MemorySegment s : huge.decodeSegments()) {
                assertFalse(s.isMapped());
                if (s.byteSize() >= HugePages.SIZE) {
                    assertEquals(0, s.address() % HugePages.SIZE, "a copy of 2 MB or more starts on a huge page");
                    large++;
                }
            }
            assertEquals(3 * LAYERS, large, "gate, up and the tiled down of every layer");
        }
    }

    @Test
    void namesParseAsTheFlagWritesThem() {
        assertEquals(CpuWeightMemory.HUGEPAGES, CpuWeightMemory.parse("HugePages"));
        assertEquals(CpuWeightMemory.MMAP, CpuWeightMemory.parse("mmap"));
        assertEquals(CpuWeightMemory.DEFAULT, CpuWeightMemory.parse("auto"));
    }

    /** A 32-token prefill, then 8 greedy decode steps; every step's logits. */
    static List<float[]> logits(CpuBackend backend) {
        List<float[]> all = new ArrayList<>();
        int[] table = {0, 1, 2};
        int[] prompt = new Random(5).ints(32, 0, VOCAB).toArray();
        float[] last = backend.forward(List.of(new SequenceForward(prompt, 0, table, LogitsMode.LAST))).getFirst()[0];
        all.add(last.clone());
        for (int step = 0; step < 8; step++) {
            int next = argmax(last);
            last = backend.forward(List.of(new SequenceForward(new int[] {next}, 32 + step, table, LogitsMode.LAST)))
                    .getFirst()[0];
            all.add(last.clone());
        }
        return all;
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            best = v[i] > v[best] ? i : best;
        }
        return best;
    }

    /** Llama shape, 4 heads / 2 KV heads, tied embeddings (no lm_head tensor), random bf16 weights. */
    static void writeTiedBf16Llama(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = json.createObjectNode();
        config.putArray("architectures").add("LlamaForCausalLM");
        config.put("hidden_size", HIDDEN).put("intermediate_size", FFN).put("num_hidden_layers", LAYERS)
                .put("num_attention_heads", 4).put("num_key_value_heads", 2).put("vocab_size", VOCAB)
                .put("rms_norm_eps", 1e-5).put("max_position_embeddings", 128).put("rope_theta", 10000.0)
                .put("tie_word_embeddings", true).put("torch_dtype", "bfloat16");
        json.writeValue(dir.resolve("config.json").toFile(), config);
        Random random = new Random(7);
        int kv = HIDDEN / 4 * 2;
        try (Arena arena = Arena.ofConfined()) {
            List<Tensor> t = new ArrayList<>();
            t.add(random(arena, random, "model.embed_tokens.weight", VOCAB, HIDDEN));
            for (int l = 0; l < LAYERS; l++) {
                String p = "model.layers." + l + ".";
                t.add(random(arena, random, p + "input_layernorm.weight", HIDDEN));
                t.add(random(arena, random, p + "self_attn.q_proj.weight", HIDDEN, HIDDEN));
                t.add(random(arena, random, p + "self_attn.k_proj.weight", kv, HIDDEN));
                t.add(random(arena, random, p + "self_attn.v_proj.weight", kv, HIDDEN));
                t.add(random(arena, random, p + "self_attn.o_proj.weight", HIDDEN, HIDDEN));
                t.add(random(arena, random, p + "post_attention_layernorm.weight", HIDDEN));
                t.add(random(arena, random, p + "mlp.gate_proj.weight", FFN, HIDDEN));
                t.add(random(arena, random, p + "mlp.up_proj.weight", FFN, HIDDEN));
                t.add(random(arena, random, p + "mlp.down_proj.weight", HIDDEN, FFN));
            }
            t.add(random(arena, random, "model.norm.weight", HIDDEN));
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, DType.BF16);
        }
    }

    /** Gaussian fp32 values (norm weights around 1, matrices around 0), converted to bf16 by the writer. */
    private static Tensor random(Arena arena, Random random, String name, long... shape) {
        long n = shape.length == 1 ? shape[0] : shape[0] * shape[1];
        MemorySegment data = arena.allocate(n * Float.BYTES);
        for (long i = 0; i < n; i++) {
            double v = shape.length == 1 ? 1 + 0.1 * random.nextGaussian() : 0.05 * random.nextGaussian();
            data.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) v);
        }
        return new Tensor(name, DType.F32, shape, data);
    }
}
