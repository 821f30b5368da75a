package io.kvass.worker.cuda;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What each part of a decode step costs in place: the step's graph time with some phases left out
 * ({@link CudaBackend#skipPhases}), against the whole step, on the Llama-3-8B-shaped random model at
 * context 1,024, batch 1 (skinny GEMVs) and batch 128 (cuBLAS). The outputs are wrong while
 * phases are skipped; only the times mean something. Usage: {@code CudaAblationProbe}.
 */
public final class CudaAblationProbe {
    private CudaAblationProbe() {
    }

    public static void main(String[] args) {
        int context = 1024, warmup = 5, measured = 30, blockSize = 16, maxBatch = 128;
        int blocksPerSeq = (context + 4 * (warmup + measured) + 2 * 16 + blockSize) / blockSize;
        CudaOptions options = new CudaOptions(0, 0.9, blockSize, 4096, maxBatch, 4096, maxBatch * blocksPerSeq + 8, true,
                io.kvass.worker.lora.LoraCapacity.NONE);
        Map<String, Set<String>> batch1 = new LinkedHashMap<>();
        batch1.put("whole step", Set.of());
        batch1.put("- attention (with rope)", Set.of("attention (paged) + rope"));
        batch1.put("- norms", Set.of("norm"));
        batch1.put("- qkv", Set.of("qkv gemm"));
        batch1.put("- o", Set.of("o gemm"));
        batch1.put("- gate/up", Set.of("gate/up gemm + silu"));
        batch1.put("- down", Set.of("down gemm"));
        batch1.put("- lm head", Set.of("lm head gemm"));
        batch1.put("only the GEMVs", Set.of("attention (paged) + rope", "embed", "norm"));
        Map<String, Set<String>> batch128 = new LinkedHashMap<>();
        batch128.put("whole step", Set.of());
        batch128.put("- attention (with rope)", Set.of("attention (paged) + rope"));
        batch128.put("- norms", Set.of("norm"));
        batch128.put("- silu", Set.of("silu*up"));
        batch128.put("- qkv", Set.of("qkv gemm"));
        batch128.put("- o", Set.of("o gemm"));
        batch128.put("- gate/up", Set.of("gate/up gemm"));
        batch128.put("- down", Set.of("down gemm"));
        batch128.put("- lm head", Set.of("lm head gemm"));
        batch128.put("only attention (with rope)", Set.of("qkv gemm", "o gemm", "gate/up gemm", "down gemm", "lm head gemm", "norm",
                "silu*up", "embed"));
        batch128.put("whole step, again", Set.of());
        try (CudaBackend backend = CudaBackend.random(CudaBenchmark.LLAMA3_8B, options, 1234)) {
            backend.randomizeKvCache(99);
            for (int batch : new int[] {1, 128}) {
                backend.setSkinnyMaxTokens(batch == 1 ? 1 : 0);
                for (Map.Entry<String, Set<String>> e : (batch == 1 ? batch1 : batch128).entrySet()) {
                    backend.skipPhases(e.getValue());
                    double ms = CudaBenchmark.decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, true);
                    System.out.printf(Locale.ROOT, "[ablation] batch %d ctx %d %-28s %.3f ms/step%n", batch, context, e.getKey(), ms);
                }
            }
            backend.skipPhases(Set.of());
        }
        // What a step costs outside the model: a one-layer model of width 256 (its GPU work is a few
        // microseconds), with Llama 3's vocabulary (the LM head and argmax of 128,256 logits) and with 1,000.
        for (int vocab : new int[] {128256, 1000}) {
            io.kvass.worker.model.ModelConfig tiny = new io.kvass.worker.model.ModelConfig(
                    io.kvass.worker.model.Architecture.LLAMA, 256, 512, 1, 2, 1, 128, vocab, 1e-5f,
                    io.kvass.worker.model.RopeScaling.plain(500000), 8192, false, false, java.util.OptionalInt.empty(),
                    Set.of());
            try (CudaBackend backend = CudaBackend.random(tiny, options, 1234)) {
                backend.randomizeKvCache(99);
                for (int batch : new int[] {1, 128}) {
                    double ms = CudaBenchmark.decodeStepMs(backend, batch, context, blocksPerSeq, warmup, 3 * measured, true);
                    System.out.printf(Locale.ROOT, "[ablation] batch %d ctx %d one-layer model (width 256, vocab %d) %.3f ms/step%n",
                            batch, context, vocab, ms);
                }
            }
        }
    }
}
