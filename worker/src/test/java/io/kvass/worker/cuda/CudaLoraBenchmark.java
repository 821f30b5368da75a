package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.AdapterFiles;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraTarget;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * Multi-LoRA decode and prefill on the Llama-3-8B-shaped random model: rank-16 adapters on all seven
 * projections of every layer, decode steps at context 1,024 with no adapter, one adapter for the
 * whole batch, and up to 16 distinct adapters (one per slot, each its own copy in GPU memory, so the
 * kernels read as many distinct weights as they would for distinct adapters). Writes a JSON file.
 * Usage: {@code CudaLoraBenchmark OUT.json}.
 */
public final class CudaLoraBenchmark {
    private static final int RANK = 16;
    private static final int SLOTS = 16;

    private CudaLoraBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args.length > 0 ? args[0] : "cuda-lora-bench.json");
        ModelConfig c = CudaBenchmark.LLAMA3_8B;
        int context = 1024, warmup = 3, measured = 20, blockSize = 16, maxBatch = 128, prefillLen = 2048;
        int blocksPerSeq = (context + warmup + measured + 2 * 16 + blockSize) / blockSize;
        int blocks = maxBatch * blocksPerSeq + prefillLen / blockSize + 8;
        long t0 = System.nanoTime();
        Path dir = Files.createTempDirectory("kvass-lora-bench");
        AdapterFiles.random(dir, c, RANK, List.of(LoraTarget.values()),
                IntStream.range(0, c.numLayers()).boxed().toList(), DType.BF16, 7, config -> { });
        LoraWeights adapter = new LoraLoader(c, RANK, List.of(dir)).load(dir);
        System.out.printf(Locale.ROOT, "adapter: rank %d, %d modules, %.0f MB fp32 on the host, made in %.1f s%n", RANK,
                adapter.modules().size(), adapter.byteSize() / 1e6, (System.nanoTime() - t0) / 1e9);
        CudaOptions options = new CudaOptions(0, 0.9, blockSize, 4096, maxBatch, 4096, blocks, true,
                new LoraCapacity(SLOTS, RANK));
        List<String> rows = new ArrayList<>();
        try (CudaBackend backend = CudaBackend.random(c, options, 1234)) {
            backend.randomizeKvCache(99);
            long t1 = System.nanoTime();
            for (int slot = 1; slot <= SLOTS; slot++) {
                backend.loadAdapter(slot, adapter);
            }
            System.out.printf(Locale.ROOT, "device %s: %d slots loaded in %.1f s%n", backend.deviceName(), SLOTS,
                    (System.nanoTime() - t1) / 1e9);
            for (int batch : new int[] {1, 32, 128}) {
                for (int distinct : IntStream.of(0, 1, Math.min(batch, SLOTS)).distinct().toArray()) {
                    int[] slots = new int[batch];
                    for (int s = 0; s < batch; s++) {
                        slots[s] = distinct == 0 ? 0 : 1 + s % distinct;
                    }
                    double ms = CudaBenchmark.decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, true,
                            slots);
                    System.out.printf(Locale.ROOT, "decode batch %3d, %2d distinct adapters: %.3f ms/step, %.0f tok/s%n",
                            batch, distinct, ms, batch * 1000 / ms);
                    rows.add(String.format(Locale.ROOT, "{\"batch\": %d, \"context\": %d, \"distinct_adapters\": %d, "
                            + "\"step_ms\": %.4f, \"tokens_per_s\": %.1f}", batch, context, distinct, ms, batch * 1000 / ms));
                }
            }
            List<SequenceForward> decode32 = new ArrayList<>();
            for (SequenceForward f : CudaBenchmark.decodeBatch(32, context, blocksPerSeq)) {
                decode32.add(new SequenceForward(f.tokenIds(), f.startPosition(), f.blockTable(), f.logits(), 1));
            }
            String profileDecode = CudaBenchmark.profile(backend, "decode batch 32, one adapter", decode32);
            int[] table = new int[prefillLen / blockSize];
            for (int b = 0; b < table.length; b++) {
                table[b] = maxBatch * blocksPerSeq + b;
            }
            String profilePrefill = CudaBenchmark.profile(backend, "prefill 2048, one adapter", List.of(new SequenceForward(
                    new java.util.Random(5).ints(prefillLen, 0, c.vocabSize()).toArray(), 0, table, LogitsMode.LAST, 1)));
            String base = CudaBenchmark.prefill(backend, c, prefillLen, maxBatch * blocksPerSeq, 5, 0);
            String lora = CudaBenchmark.prefill(backend, c, prefillLen, maxBatch * blocksPerSeq, 5, 1);
            String doc = String.format(Locale.ROOT, "{\n  \"date\": \"%s\",\n  \"device\": \"%s\",\n  \"model\": \"Llama-3-8B shape, "
                    + "random bf16 weights\",\n  \"adapter\": {\"rank\": %d, \"targets\": \"all 7\", \"slots\": %d},\n"
                    + "  \"decode\": [\n    %s\n  ],\n  \"prefill\": [{%s}, {%s}],\n  \"profiles_ms\": {%s, %s}\n}%n",
                    Instant.now(), backend.deviceName(), RANK, SLOTS, String.join(",\n    ", rows), base, lora, profileDecode,
                    profilePrefill);
            Files.writeString(out, doc);
            System.out.println(doc);
        }
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        Files.delete(dir);
    }
}
