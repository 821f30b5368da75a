package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.LlamaTensors;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import io.kvass.worker.model.Tensor;
import io.kvass.worker.model.WeightSource;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * At Llama 3 8B's attention shape (head dim 128, 4 query heads per K/V head) on a small random model:
 * the CUDA backend's logits against the CPU backend's fp32 ones, through long prompts (split-K
 * partitions), chunked prefill and graph-replayed decode steps.
 */
@Tag("gpu")
class CudaBackendVsCpuTest {
    private static final double MAX_RELATIVE_ERROR = 0.03;

    static LoadedModel randomModel(ModelConfig c, long seed) {
        Arena arena = Arena.ofShared();
        Random rnd = new Random(seed);
        java.util.function.BiFunction<String, long[], Tensor> matrix = (name, shape) -> {
            long n = shape[0] * (shape.length > 1 ? shape[1] : 1);
            MemorySegment s = arena.allocate(2 * n);
            double scale = shape.length > 1 ? 1 / Math.sqrt(shape[1]) : 0.1;
            for (long i = 0; i < n; i++) {
                float v = (float) ((rnd.nextDouble() * 2 - 1) * scale) + (shape.length > 1 ? 0 : 1);
                s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Bf16.of(v));
            }
            return new Tensor(name, DType.BF16, shape, s);
        };
        long h = c.hiddenSize(), ffn = c.intermediateSize();
        List<LlamaTensors.Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.numLayers(); l++) {
            layers.add(new LlamaTensors.Layer(matrix.apply("norm", new long[] {h}),
                    matrix.apply("q", new long[] {c.qDim(), h}), matrix.apply("k", new long[] {c.kvDim(), h}),
                    matrix.apply("v", new long[] {c.kvDim(), h}), matrix.apply("o", new long[] {h, c.qDim()}),
                    Optional.empty(), Optional.empty(), Optional.empty(), matrix.apply("ffn norm", new long[] {h}),
                    matrix.apply("gate", new long[] {ffn, h}), matrix.apply("up", new long[] {ffn, h}),
                    matrix.apply("down", new long[] {h, ffn})));
        }
        LlamaTensors tensors = new LlamaTensors(matrix.apply("embedding", new long[] {c.vocabSize(), h}), layers,
                matrix.apply("final norm", new long[] {h}), matrix.apply("lm head", new long[] {c.vocabSize(), h}));
        WeightSource source = new WeightSource() {
            @Override
            public Optional<Tensor> find(String name) {
                return Optional.empty();
            }

            @Override
            public String describe() {
                return "random weights";
            }

            @Override
            public void close() {
                arena.close();
            }
        };
        return new LoadedModel(Path.of("random"), c, tensors, source);
    }

    @Test
    void logitsMatchTheCpuBackendAtHeadDim128WithGroupsOfFour() {
        Gpu.assumePresent();
        ModelConfig c = new ModelConfig(Architecture.LLAMA, 512, 768, 2, 16, 4, 128, 300, 1e-5f,
                RopeScaling.plain(500000), 2048, false, false, OptionalInt.empty(), Set.of());
        Random rnd = new Random(7);
        int[] lengths = {700, 37, 1};
        int steps = 6;
        try (LoadedModel model = randomModel(c, 11);
             CpuBackend cpu = new CpuBackend(model, 80, 16, Runtime.getRuntime().availableProcessors());
             CudaBackend gpu = CudaBackend.open(model, CudaOptions.defaults(2048).withKvBlocks(80).withMaxTokensPerStep(512))) {
            List<int[]> prompts = new ArrayList<>();
            for (int len : lengths) {
                prompts.add(rnd.ints(len, 0, c.vocabSize()).toArray());
            }
            List<List<float[]>> cpuRows = run(cpu, prompts, steps);
            List<List<float[]>> gpuRows = run(gpu, prompts, steps);
            double worst = 0;
            for (int s = 0; s < prompts.size(); s++) {
                for (int r = 0; r < cpuRows.get(s).size(); r++) {
                    worst = Math.max(worst, Gpu.relativeError(gpuRows.get(s).get(r), cpuRows.get(s).get(r)));
                }
            }
            System.out.printf("[cuda] head dim 128 x 4 random model: worst row relative error %.4f%n", worst);
            assertTrue(worst < MAX_RELATIVE_ERROR, "CUDA vs CPU logits: relative error " + worst);
        }
    }

    /** Prefill every prompt (the longest in 16-token-aligned chunks of 320), then decode steps feeding token 7. */
    private static List<List<float[]>> run(Backend backend, List<int[]> prompts, int steps) {
        List<List<float[]>> rows = new ArrayList<>();
        int[][] tables = new int[prompts.size()][];
        int next = 0;
        for (int s = 0; s < prompts.size(); s++) {
            rows.add(new ArrayList<>());
            tables[s] = new int[(prompts.get(s).length + steps + 15) / 16];
            for (int b = 0; b < tables[s].length; b++) {
                tables[s][tables[s].length - 1 - b] = next++; // reversed: blocks out of order
            }
        }
        int[] fed = new int[prompts.size()];
        while (true) {
            List<SequenceForward> batch = new ArrayList<>();
            List<Integer> who = new ArrayList<>();
            for (int s = 0; s < prompts.size(); s++) {
                int[] p = prompts.get(s);
                if (fed[s] < p.length) {
                    int end = Math.min(p.length, fed[s] + 320);
                    batch.add(new SequenceForward(java.util.Arrays.copyOfRange(p, fed[s], end), fed[s], tables[s], LogitsMode.ALL));
                    fed[s] = end;
                    who.add(s);
                } else if (fed[s] < p.length + steps) {
                    batch.add(new SequenceForward(new int[] {7}, fed[s], tables[s], LogitsMode.LAST));
                    fed[s]++;
                    who.add(s);
                }
            }
            if (batch.isEmpty()) {
                return rows;
            }
            List<float[][]> out = backend.forward(batch);
            for (int i = 0; i < who.size(); i++) {
                rows.get(who.get(i)).addAll(java.util.Arrays.asList(out.get(i)));
            }
        }
    }
}
