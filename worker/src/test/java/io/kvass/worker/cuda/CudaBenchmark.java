package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;

/**
 * Decode and prefill speed of the CUDA backend on a Llama-3-8B-shaped model (hidden 4096, 32 layers,
 * 32 heads, 8 KV heads, FFN 14336, vocab 128256) with random bf16 weights made on the GPU.
 *
 * <p>Decode: batches of sequences at context 1,024 (paged K/V, 16-token blocks), one new token each;
 * a step is {@link CudaBackend#forwardGreedy} (inputs up, graph replay, argmax on the GPU, ids down)
 * timed by wall clock, median of the measured steps. Also {@code forward()} with fp32 logits copied to
 * the host, which the {@code Backend} interface returns. Past batch 8, GEMMs run as the backend runs them
 * by default ({@code cublas}: tuned by {@link GemmTuner}, unless {@code -Dkvass.cuda.gemmTune=off}), A/B
 * against plain cublasGemmEx ({@code untuned}), and kvass's decode GEMM. Prefill: one 2,048-token prompt.
 *
 * <p>Usage: {@code CudaBenchmark OUT.json [quick]}
 */
public final class CudaBenchmark {
    static final ModelConfig LLAMA3_8B = new ModelConfig(Architecture.LLAMA, 4096, 14336, 32, 32, 8, 128, 128256, 1e-5f,
            RopeScaling.plain(500000), 8192, false, false, OptionalInt.empty(), Set.of());

    private CudaBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args.length > 0 ? args[0] : "cuda-bench.json");
        boolean quick = args.length > 1 && args[1].equals("quick");
        ModelConfig c = LLAMA3_8B;
        int context = 1024, warmup = 3, measured = quick ? 8 : 20, blockSize = 16;
        int[] batches = {1, 8, 32, 128, 256};
        int maxBatch = 256;
        int blocksPerSeq = (context + warmup + measured + 2 * 16 + blockSize) / blockSize;
        int prefillLen = 2048;
        int blocks = maxBatch * blocksPerSeq + prefillLen / blockSize + 8;
        CudaOptions options = new CudaOptions(0, 0.9, blockSize, 4096, maxBatch, 4096, blocks, true,
                io.kvass.worker.lora.LoraCapacity.NONE);
        List<String> json = new ArrayList<>();
        long t0 = System.nanoTime();
        try (CudaBackend backend = CudaBackend.random(c, options, 1234)) {
            backend.randomizeKvCache(99);
            GemmTuner.Mode tuning = GemmTuner.Mode.fromProperty();
            System.out.printf("device %s, setup %.1f s%n", backend.deviceName(), (System.nanoTime() - t0) / 1e9);
            json.add(String.format(Locale.ROOT, "\"device\": \"%s\", \"kv_blocks\": %d, \"block_size\": %d", backend.deviceName(),
                    backend.numKvBlocks(), backend.blockSize()));
            List<String> decode = new ArrayList<>();
            for (int batch : batches) {
                // Past batch 8: cuBLAS tuned and untuned alternating (A B A B) in the same process (the first tuned
                // step of a batch tunes its shapes, among the warm-up steps); -Dkvass.bench.gemm=kvass,cublas,... to pick.
                String[] gemms = batch <= 8 ? new String[] {"skinny", "cublas"}
                        : System.getProperty("kvass.bench.gemm", "cublas,untuned,cublas,untuned").split(",");
                for (String gemm : gemms) {
                    backend.setSkinnyMaxTokens(gemm.equals("skinny") ? Math.max(batch, 1) : 0);
                    backend.setDecodeGemm(gemm.equals("kvass"));
                    backend.setGemmTuning(gemm.equals("untuned") ? GemmTuner.Mode.OFF : tuning);
                    double ms = decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, true);
                    double msLogits = batch <= 32 || !quick ? decodeStepMs(backend, batch, context, blocksPerSeq, 1,
                            quick ? 3 : 5, false) : Double.NaN;
                    System.out.printf(Locale.ROOT, "decode batch %3d ctx %d [%s]: %.3f ms/step, %.0f tok/s (greedy on GPU); "
                            + "%.3f ms/step with fp32 logits to host%n", batch, context, gemm, ms, batch * 1000 / ms, msLogits);
                    decode.add(String.format(Locale.ROOT, "{\"batch\": %d, \"context\": %d, \"gemm\": \"%s\", \"step_ms\": %.4f, "
                            + "\"tokens_per_s\": %.1f, \"step_ms_logits_to_host\": %.4f}", batch, context, gemm, ms,
                            batch * 1000 / ms, msLogits));
                }
            }
            List<String> tuned = new ArrayList<>();
            for (GemmTuner.Result r : backend.gemmTuning()) {
                System.out.println("[tune] " + r);
                tuned.add(String.format(Locale.ROOT, "{\"n\": %d, \"out\": %d, \"in\": %d, \"mode\": \"%s\", \"winner\": \"%s\", "
                        + "\"us\": %.2f, \"cublas_gemm_ex_us\": %.2f}", r.product().n(), r.product().out(), r.product().in(),
                        r.product().mode(), r.winner(), r.winnerUs(), r.gemmExUs()));
            }
            json.add("\"gemm_tuning\": [\n    " + String.join(",\n    ", tuned) + "\n  ]");
            backend.setGemmTuning(tuning);
            backend.setSkinnyMaxTokens(1);
            backend.setDecodeGemm(false);
            // The tensor-core decode kernel's K/V loads (cp.async, tensor maps), alternating, twice.
            List<String> variants = new ArrayList<>();
            for (int batch : new int[] {1, 32, 128, 256}) {
                for (int rep = 0; rep < 2; rep++) {
                    for (CudaKernels.AttentionLoads loads : CudaKernels.AttentionLoads.values()) {
                        backend.setAttentionLoads(loads);
                        double ms = decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, true);
                        System.out.printf(Locale.ROOT, "attention loads %-7s: decode batch %3d: %.3f ms/step, %.0f tok/s%n",
                                loads, batch, ms, batch * 1000 / ms);
                        variants.add(String.format(Locale.ROOT, "{\"loads\": \"%s\", \"batch\": %d, \"step_ms\": %.4f}",
                                loads, batch, ms));
                    }
                }
            }
            backend.setAttentionLoads(CudaKernels.AttentionLoads.fromProperty());
            json.add("\"attention_loads\": [\n    " + String.join(",\n    ", variants) + "\n  ]");
            json.add("\"decode\": [\n    " + String.join(",\n    ", decode) + "\n  ]");
            json.add(prefill(backend, c, prefillLen, maxBatch * blocksPerSeq, quick ? 3 : 5));
            List<String> profiles = new ArrayList<>();
            for (int batch : new int[] {1, 32, 256}) {
                profiles.add(profile(backend, "decode batch " + batch, decodeBatch(batch, context, blocksPerSeq)));
            }
            int[] table = new int[prefillLen / 16];
            for (int b = 0; b < table.length; b++) {
                table[b] = maxBatch * blocksPerSeq + b;
            }
            profiles.add(profile(backend, "prefill " + prefillLen, List.of(new SequenceForward(
                    new Random(5).ints(prefillLen, 0, c.vocabSize()).toArray(), 0, table, LogitsMode.LAST))));
            json.add("\"profiles_ms\": {\n    " + String.join(",\n    ", profiles) + "\n  }");
        }
        String doc = String.format(Locale.ROOT, "{\n  \"date\": \"%s\",\n  \"model\": \"Llama-3-8B shape, random bf16 weights\",\n  %s\n}%n",
                Instant.now(), String.join(",\n  ", json));
        Files.writeString(out, doc);
        System.out.println(doc);
    }

    /** Median wall time of a decode step for {@code batch} sequences at {@code context} positions. */
    static double decodeStepMs(CudaBackend backend, int batch, int context, int blocksPerSeq, int warmup, int measured,
                               boolean greedyOnGpu) {
        return decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, greedyOnGpu, new int[batch]);
    }

    /** As above, sequence {@code s} on LoRA slot {@code slots[s]} (0 = base model). */
    static double decodeStepMs(CudaBackend backend, int batch, int context, int blocksPerSeq, int warmup, int measured,
                               boolean greedyOnGpu, int[] slots) {
        int[][] tables = new int[batch][blocksPerSeq];
        for (int s = 0; s < batch; s++) {
            for (int b = 0; b < blocksPerSeq; b++) {
                tables[s][b] = s * blocksPerSeq + b;
            }
        }
        int[] tokens = new int[batch];
        Arrays.fill(tokens, 42);
        double[] times = new double[measured];
        for (int step = 0; step < warmup + measured; step++) {
            List<SequenceForward> seqs = new ArrayList<>(batch);
            for (int s = 0; s < batch; s++) {
                seqs.add(new SequenceForward(new int[] {tokens[s]}, context + step, tables[s], LogitsMode.LAST, slots[s]));
            }
            long start = System.nanoTime();
            if (greedyOnGpu) {
                tokens = backend.forwardGreedy(seqs);
            } else {
                List<float[][]> logits = backend.forward(seqs);
                for (int s = 0; s < batch; s++) {
                    tokens[s] = argmax(logits.get(s)[0]);
                }
            }
            long end = System.nanoTime();
            if (step >= warmup) {
                times[step - warmup] = (end - start) / 1e6;
            }
        }
        Arrays.sort(times);
        return times[times.length / 2];
    }

    static List<SequenceForward> decodeBatch(int batch, int context, int blocksPerSeq) {
        List<SequenceForward> seqs = new ArrayList<>();
        for (int s = 0; s < batch; s++) {
            int[] table = new int[blocksPerSeq];
            for (int b = 0; b < blocksPerSeq; b++) {
                table[b] = s * blocksPerSeq + b;
            }
            seqs.add(new SequenceForward(new int[] {42}, context, table, LogitsMode.LAST));
        }
        return seqs;
    }

    /** GPU time per phase of one eager step (second of two), as a JSON member. */
    static String profile(CudaBackend backend, String name, List<SequenceForward> batch) {
        backend.profile(batch);
        java.util.Map<String, Double> ms = backend.profile(batch);
        double gpu = ms.entrySet().stream().filter(e -> !e.getKey().equals("step (wall)")).mapToDouble(java.util.Map.Entry::getValue).sum();
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "profile %s: GPU %.3f ms of wall %.3f ms (eager, events):", name,
                gpu, ms.get("step (wall)")));
        List<String> members = new ArrayList<>();
        for (var e : ms.entrySet()) {
            line.append(String.format(Locale.ROOT, " %s %.3f;", e.getKey(), e.getValue()));
            members.add(String.format(Locale.ROOT, "\"%s\": %.4f", e.getKey(), e.getValue()));
        }
        System.out.println(line);
        return String.format(Locale.ROOT, "\"%s\": {%s}", name, String.join(", ", members));
    }

    static String prefill(CudaBackend backend, ModelConfig c, int len, int firstBlock, int measured) {
        return prefill(backend, c, len, firstBlock, measured, 0);
    }

    /** As above, the prompt on LoRA slot {@code slot}. */
    static String prefill(CudaBackend backend, ModelConfig c, int len, int firstBlock, int measured, int slot) {
        int[] table = new int[len / 16];
        for (int b = 0; b < table.length; b++) {
            table[b] = firstBlock + b;
        }
        int[] prompt = new Random(5).ints(len, 0, c.vocabSize()).toArray();
        double[] times = new double[measured];
        for (int i = -2; i < measured; i++) {
            long start = System.nanoTime();
            backend.forwardGreedy(List.of(new SequenceForward(prompt, 0, table, LogitsMode.LAST, slot)));
            double ms = (System.nanoTime() - start) / 1e6;
            if (i >= 0) {
                times[i] = ms;
            }
        }
        Arrays.sort(times);
        double ms = times[times.length / 2];
        long h = c.hiddenSize(), ffn = c.intermediateSize();
        double layerParams = h * (c.qDim() + 2.0 * c.kvDim()) + (double) c.qDim() * h + 3.0 * ffn * h;
        double attention = 4.0 * c.numHeads() * c.headDim() * (len * (len + 1.0) / 2) * c.numLayers();
        double executed = 2 * layerParams * c.numLayers() * len + 2.0 * h * c.vocabSize() + attention;
        double gptFast = 2 * (layerParams * c.numLayers() + h * c.vocabSize()) * len + attention;
        System.out.printf(Locale.ROOT, "prefill %d tokens (slot %d): %.2f ms, %.1f TFLOP/s executed (%.1f counting the LM head on every "
                + "token, gpt-fast's convention)%n", len, slot, ms, executed / ms / 1e9, gptFast / ms / 1e9);
        return String.format(Locale.ROOT, "\"prefill\": {\"tokens\": %d, \"lora_slot\": %d, \"ms\": %.3f, \"tflops_executed\": %.1f, "
                + "\"tflops_lm_head_all_tokens\": %.1f}", len, slot, ms, executed / ms / 1e9, gptFast / ms / 1e9);
    }

    static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) {
            if (row[i] > row[best]) {
                best = i;
            }
        }
        return best;
    }
}
