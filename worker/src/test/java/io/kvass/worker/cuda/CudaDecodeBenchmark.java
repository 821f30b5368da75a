package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Batch-1 decode with and without the SiLU fusion, and the cost of sampling on the GPU, on the
 * Llama-3-8B-shaped random model at context 1,024: medians of {@code forwardGreedy} and
 * {@code forwardAndSample} steps (graphs). Usage: {@code CudaDecodeBenchmark}.
 */
public final class CudaDecodeBenchmark {
    private CudaDecodeBenchmark() {
    }

    public static void main(String[] args) {
        int context = 1024, warmup = 5, measured = 30, blockSize = 16, maxBatch = 64;
        int blocksPerSeq = (context + warmup + measured + 2 * 16 + blockSize) / blockSize;
        CudaOptions options = new CudaOptions(0, 0.9, blockSize, 4096, maxBatch, 4096, maxBatch * blocksPerSeq + 8, true,
                io.kvass.worker.lora.LoraCapacity.NONE);
        try (CudaBackend backend = CudaBackend.random(CudaBenchmark.LLAMA3_8B, options, 1234)) {
            backend.randomizeKvCache(99);
            backend.setSkinnyMaxTokens(1);
            for (String fusion : new String[] {"none", "silu", "none", "silu"}) {
                backend.setFusion(fusion.equals("silu"));
                double ms = CudaBenchmark.decodeStepMs(backend, 1, context, blocksPerSeq, warmup, measured, true);
                System.out.printf(Locale.ROOT, "[decode] batch 1 ctx %d, fusion %s: %.3f ms/step (%.1f tok/s)%n", context,
                        fusion, ms, 1000 / ms);
            }
            backend.setFusion(true);
            double best = Double.MAX_VALUE, bestWaves = 0.5;
            for (double waves : new double[] {0.5, 2, 0.5}) {
                for (int rope : new int[] {8}) {
                    backend.tune(waves, rope);
                    double ms = CudaBenchmark.decodeStepMs(backend, 1, context, blocksPerSeq, warmup, measured, true);
                    System.out.printf(Locale.ROOT, "[decode] batch 1 ctx %d, fusion silu, skinny waves %.2f, rope split %s: "
                            + "%.3f ms/step%n", context, waves, rope > 0 ? "on" : "off", ms);
                    if (rope > 0 && ms < best) {
                        best = ms;
                        bestWaves = waves;
                    }
                }
            }
            backend.setSkinnyMaxTokens(1);
            backend.tune(bestWaves, 8);
            System.out.printf(Locale.ROOT, "[decode] best: skinny waves %.2f, %.3f ms/step%n", bestWaves, best);
            CudaBenchmark.profile(backend, "decode batch 1 (fused)", CudaBenchmark.decodeBatch(1, context, blocksPerSeq));
            for (int batch : new int[] {1, 64}) {
                double greedy = CudaBenchmark.decodeStepMs(backend, batch, context, blocksPerSeq, warmup, measured, true);
                for (SamplingParams p : List.of(SamplingParams.builder().temperature(1f).build(),
                        SamplingParams.builder().temperature(0.8f).topP(0.95f).topK(50).build())) {
                    double ms = sampledStepMs(backend, batch, context, blocksPerSeq, warmup, measured, p);
                    System.out.printf(Locale.ROOT, "[decode] batch %d ctx %d: forwardGreedy %.3f ms, forwardAndSample "
                            + "(T=%.1f top_k=%d top_p=%.2f) %.3f ms/step%n", batch, context, greedy, p.temperature(),
                            p.topK(), p.topP(), ms);
                }
            }
        }
    }

    static double sampledStepMs(CudaBackend backend, int batch, int context, int blocksPerSeq, int warmup, int measured,
                                SamplingParams params) {
        List<SequenceSamplingState> states = new ArrayList<>();
        for (int s = 0; s < batch; s++) {
            states.add(SequenceSamplingState.create(params.withSeed(s), new int[] {1}, new int[0]));
        }
        int[] tokens = new int[batch];
        Arrays.fill(tokens, 42);
        double[] times = new double[measured];
        Sampler sampler = Sampler.cpu();
        for (int step = 0; step < warmup + measured; step++) {
            List<SequenceForward> seqs = new ArrayList<>(batch);
            for (int s = 0; s < batch; s++) {
                int[] table = new int[blocksPerSeq];
                for (int b = 0; b < blocksPerSeq; b++) {
                    table[b] = s * blocksPerSeq + b;
                }
                seqs.add(new SequenceForward(new int[] {tokens[s]}, context + step, table, LogitsMode.LAST));
            }
            long start = System.nanoTime();
            var out = backend.forwardAndSample(seqs, states, sampler);
            long end = System.nanoTime();
            for (int s = 0; s < batch; s++) {
                tokens[s] = out.get(s).tokenId();
            }
            if (step >= warmup) {
                times[step - warmup] = (end - start) / 1e6;
            }
        }
        Arrays.sort(times);
        return times[times.length / 2];
    }
}
