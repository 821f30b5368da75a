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
 * The batch-1 decode fusion (SiLU into the gate/up GEMV) gives bit-identical logits to the unfused kernels, replayed as graphs and eager, at
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
                        gpu.setFusion(false);
                        List<float[]> plain = run(gpu, c);
                        for (int i = 0; i < plain.size(); i++) {
                            assertArrayEquals(plain.get(i), fused.get(i), 0f, "hidden " + c.hiddenSize() + ", graphs "
                                    + graphs + ", logits row " + i);
                        }
                    }
                }
                System.out.printf("[cuda] batch-1 fusion bit-identical (hidden %d, ffn %d, graphs and eager)%n",
                        c.hiddenSize(), c.intermediateSize());
            }
        }
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
