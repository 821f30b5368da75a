package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The decode fusions (SiLU into the gate/up GEMV at batch 1; RoPE and the K/V store into attention in
 * every decode step, here at batch 1 and 3) give bit-identical logits to the unfused kernels, replayed as graphs and eager, at
 * shapes where the gate/up GEMV splits rows over 1 and 2 warps.
 */
@Tag("gpu")
class CudaFusionTest {

    @Test
    void fusedDecodeStepsAreBitIdentical() {
        Gpu.assumePresent();
        for (ModelConfig c : List.of(
                new ModelConfig(Architecture.LLAMA, 512, 1024, 2, 8, 2, 64, 1000, 1e-5f, RopeScaling.plain(10000), 512,
                        false, false, OptionalInt.empty(), Set.of()),
                new ModelConfig(Architecture.LLAMA, 256, 768, 2, 4, 2, 64, 997, 1e-5f, RopeScaling.plain(10000), 512,
                        false, false, OptionalInt.empty(), Set.of()))) {
            try (LoadedModel model = CudaBackendVsCpuTest.randomModel(c, 3)) {
                for (boolean graphs : new boolean[] {true, false}) {
                    try (CudaBackend gpu = CudaBackend.open(model, CudaOptions.defaults(512).withKvBlocks(8)
                            .withCudaGraphs(graphs))) {
                        gpu.setFusion(true);
                        List<float[]> fused = run(gpu, c);
                        fused.addAll(runThree(gpu, c));
                        gpu.setFusion(false);
                        List<float[]> plain = run(gpu, c);
                        plain.addAll(runThree(gpu, c));
                        for (int i = 0; i < plain.size(); i++) {
                            assertArrayEquals(plain.get(i), fused.get(i), 0f, "hidden " + c.hiddenSize() + ", graphs "
                                    + graphs + ", logits row " + i);
                        }
                    }
                }
                System.out.printf("[cuda] decode fusions bit-identical (hidden %d, ffn %d, batch 1 and 3, graphs and eager)%n",
                        c.hiddenSize(), c.intermediateSize());
            }
        }
    }

    /** Tensor-map K/V loads change no bit of the logits (against cp.async loads). */
    @Test
    void attentionLoadsAreBitIdentical() {
        Gpu.assumePresent();
        ModelConfig c = new ModelConfig(Architecture.LLAMA, 512, 1024, 2, 8, 2, 64, 1000, 1e-5f, RopeScaling.plain(10000),
                512, false, false, OptionalInt.empty(), Set.of());
        try (LoadedModel model = CudaBackendVsCpuTest.randomModel(c, 5);
             CudaBackend gpu = CudaBackend.open(model, CudaOptions.defaults(512).withKvBlocks(8))) {
            gpu.setAttentionLoads(CudaKernels.AttentionLoads.CPASYNC);
            List<float[]> plain = run(gpu, c);
            plain.addAll(runThree(gpu, c));
            gpu.setAttentionLoads(CudaKernels.AttentionLoads.TENSOR);
            List<float[]> tensor = run(gpu, c);
            tensor.addAll(runThree(gpu, c));
            for (int i = 0; i < plain.size(); i++) {
                assertArrayEquals(plain.get(i), tensor.get(i), 0f, "tensor-map loads, row " + i);
            }
            System.out.println("[cuda] tensor-map K/V loads bit-identical to cp.async (batch 1 and 3, graphs)");
        }
    }

    /** Three sequences (prompts of 5, 19 and 40 tokens) prefilled together, then 5 decode steps of all three. */
    private static List<float[]> runThree(CudaBackend gpu, ModelConfig c) {
        Random rnd = new Random(11);
        int[][] tables = {{0}, {1, 2}, {3, 4, 5, 6}};
        int[] lengths = {5, 19, 40};
        List<SequenceForward> prefill = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
            prefill.add(new SequenceForward(rnd.ints(lengths[s], 0, c.vocabSize()).toArray(), 0, tables[s], LogitsMode.LAST));
        }
        List<float[]> rows = new ArrayList<>();
        for (float[][] r : gpu.forward(prefill)) {
            rows.add(r[0]);
        }
        for (int step = 0; step < 5; step++) {
            List<SequenceForward> decode = new ArrayList<>();
            for (int s = 0; s < 3; s++) {
                int token = CudaBenchmark.argmax(rows.get(rows.size() - 3 + s));
                decode.add(new SequenceForward(new int[] {token}, lengths[s] + step, tables[s], LogitsMode.LAST));
            }
            for (float[][] r : gpu.forward(decode)) {
                rows.add(r[0]);
            }
        }
        return rows;
    }

    /** A 21-token prompt, then 6 single-token steps: the logits of each step. */
    private static List<float[]> run(CudaBackend gpu, ModelConfig c) {
        Random rnd = new Random(9);
        int[] table = {3, 1, 4, 0};
        List<float[]> rows = new ArrayList<>();
        int[] prompt = rnd.ints(21, 0, c.vocabSize()).toArray();
        rows.add(gpu.forward(List.of(new SequenceForward(prompt, 0, table, LogitsMode.LAST))).get(0)[0]);
        for (int step = 0; step < 6; step++) {
            int token = CudaBenchmark.argmax(rows.get(rows.size() - 1));
            rows.add(gpu.forward(List.of(new SequenceForward(new int[] {token}, prompt.length + step, table,
                    LogitsMode.LAST))).get(0)[0]);
        }
        return rows;
    }
}
