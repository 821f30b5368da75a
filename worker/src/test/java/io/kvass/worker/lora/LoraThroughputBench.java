package io.kvass.worker.lora;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * CPU throughput of a batch of 32 sequences on the base model vs with 1, 8 and 32 distinct rank-8
 * adapters on all seven projections (docs/benchmarks.md). Not a correctness test: tagged slow, run with
 * {@code mvn -q -pl worker test -Dtest=LoraThroughputBench -Dkvass.test.excludedGroups=gpu -Dsurefire.failIfNoSpecifiedTests=false}.
 */
@Tag("slow")
class LoraThroughputBench {
    private static final int SEQS = 32;
    private static final int PROMPT = 32;
    private static final int DECODE_STEPS = 32;
    private static final int RANK = 8;
    private static final int WARMUP_ROUNDS = 2;
    private static final int ROUNDS = 5;

    @TempDir
    Path tmp;

    @Test
    void throughput() throws IOException {
        Path random = randomLlama(tmp.resolve("random-768"), 768, 2048, 6, 12, 4, 8192);
        for (Path dir : List.of(Fixtures.reference("llama-gqa"), random)) {
            try (LoadedModel model = LoadedModel.load(dir)) {
                ModelConfig c = model.config();
                System.out.printf("%nmodel %s: hidden %d, %d layers, ffn %d, vocab %d, weights %s%n", dir.getFileName(),
                        c.hiddenSize(), c.numLayers(), c.intermediateSize(), c.vocabSize(), c.architecture());
                List<LoraWeights> adapters = new ArrayList<>();
                LoraLoader loader = new LoraLoader(c, RANK, List.of(tmp));
                for (int i = 0; i < SEQS; i++) {
                    adapters.add(loader.load(AdapterFiles.random(tmp.resolve(dir.getFileName() + "-a" + i), c, RANK,
                            List.of(LoraTarget.values()), java.util.stream.IntStream.range(0, c.numLayers()).boxed().toList(),
                            DType.BF16, i, x -> { })));
                }
                int[] cases = {0, 1, 8, 32};
                double[][] best = new double[cases.length][2];
                int blocksEach = (PROMPT + DECODE_STEPS + 15) / 16;
                try (CpuBackend backend = new CpuBackend(model, SEQS * blocksEach, 16, 2, new LoraCapacity(SEQS, RANK))) {
                    for (int i = 0; i < SEQS; i++) {
                        backend.loadAdapter(i + 1, adapters.get(i));
                    }
                    // NOTE: rounds interleave the cases and the best of each is kept: the machine is shared, and
                    // JIT warm-up must not favour whichever case runs last.
                    for (int round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
                        for (int i = 0; i < cases.length; i++) {
                            double[] r = measure(backend, c, blocksEach, cases[i], round);
                            if (round >= WARMUP_ROUNDS) {
                                best[i][0] = Math.max(best[i][0], r[0]);
                                best[i][1] = Math.max(best[i][1], r[1]);
                            }
                        }
                    }
                }
                System.out.println("| distinct adapters in the batch of " + SEQS + " | prefill tok/s | vs base | decode tok/s | vs base |");
                System.out.println("|---|---|---|---|---|");
                for (int i = 0; i < cases.length; i++) {
                    System.out.printf("| %s | %.0f | %.2f | %.0f | %.2f |%n", cases[i] == 0 ? "none (base model)" : cases[i],
                            best[i][0], best[i][0] / best[0][0], best[i][1], best[i][1] / best[0][1]);
                }
            }
        }
    }

    /** One round: {prefill tokens/s, decode tokens/s}. Sequence s uses adapter slot {@code 1 + s % distinct}. */
    private static double[] measure(CpuBackend backend, ModelConfig c, int blocksEach, int distinct, int round) {
        Random random = new Random(round);
        List<SequenceForward> prefill = new ArrayList<>();
        for (int s = 0; s < SEQS; s++) {
            int[] prompt = random.ints(PROMPT, 3, c.vocabSize()).toArray();
            prefill.add(new SequenceForward(prompt, 0, table(s, blocksEach), LogitsMode.LAST, slot(s, distinct)));
        }
        long t0 = System.nanoTime();
        backend.forward(prefill);
        long t1 = System.nanoTime();
        for (int step = 0; step < DECODE_STEPS; step++) {
            List<SequenceForward> decode = new ArrayList<>();
            for (int s = 0; s < SEQS; s++) {
                decode.add(new SequenceForward(new int[] {3 + (s + step) % 100}, PROMPT + step, table(s, blocksEach),
                        LogitsMode.LAST, slot(s, distinct)));
            }
            backend.forward(decode);
        }
        long t2 = System.nanoTime();
        return new double[] {SEQS * PROMPT / ((t1 - t0) / 1e9), SEQS * DECODE_STEPS / ((t2 - t1) / 1e9)};
    }

    private static int slot(int seq, int distinct) {
        return distinct == 0 ? 0 : 1 + seq % distinct;
    }

    private static int[] table(int seq, int blocksEach) {
        return java.util.stream.IntStream.range(seq * blocksEach, (seq + 1) * blocksEach).toArray();
    }

    /** A Llama-shaped model with random bf16 weights (no such checkpoint is in the fixtures). */
    static Path randomLlama(Path dir, int hidden, int ffn, int layers, int heads, int kvHeads, int vocab) throws IOException {
        Files.createDirectories(dir);
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = json.createObjectNode();
        config.putArray("architectures").add("LlamaForCausalLM");
        config.put("hidden_size", hidden).put("intermediate_size", ffn).put("num_hidden_layers", layers)
                .put("num_attention_heads", heads).put("num_key_value_heads", kvHeads).put("vocab_size", vocab)
                .put("rms_norm_eps", 1e-5).put("max_position_embeddings", 512).put("rope_theta", 10000.0)
                .put("tie_word_embeddings", false).put("torch_dtype", "bfloat16").put("bos_token_id", 1).put("eos_token_id", 2);
        json.writeValue(dir.resolve("config.json").toFile(), config);
        Random random = new Random(42);
        int kv = hidden / heads * kvHeads;
        Map<String, AdapterFiles.T> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", matrix(random, vocab, hidden));
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            t.put(p + "input_layernorm.weight", ones(hidden));
            t.put(p + "self_attn.q_proj.weight", matrix(random, hidden, hidden));
            t.put(p + "self_attn.k_proj.weight", matrix(random, kv, hidden));
            t.put(p + "self_attn.v_proj.weight", matrix(random, kv, hidden));
            t.put(p + "self_attn.o_proj.weight", matrix(random, hidden, hidden));
            t.put(p + "post_attention_layernorm.weight", ones(hidden));
            t.put(p + "mlp.gate_proj.weight", matrix(random, ffn, hidden));
            t.put(p + "mlp.up_proj.weight", matrix(random, ffn, hidden));
            t.put(p + "mlp.down_proj.weight", matrix(random, hidden, ffn));
        }
        t.put("model.norm.weight", ones(hidden));
        t.put("lm_head.weight", matrix(random, vocab, hidden));
        AdapterFiles.writeSafetensors(dir.resolve("model.safetensors"), t);
        return dir;
    }

    private static AdapterFiles.T matrix(Random random, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.02);
        }
        return new AdapterFiles.T(new long[] {rows, cols}, v, DType.BF16);
    }

    private static AdapterFiles.T ones(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1f);
        return new AdapterFiles.T(new long[] {n}, v, DType.BF16);
    }
}
