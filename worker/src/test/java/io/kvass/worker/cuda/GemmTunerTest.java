package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The GEMM autotuner: every candidate it may pick (cublasGemmEx, cuBLASLt's heuristic algorithms and
 * their split-K variants) computes the same product as cublasGemmEx within bf16 rounding, for each
 * output mode (fp32_add really adding to what y held); and graph-replayed decode steps on tuned GEMMs,
 * the fastest or cuBLASLt's forced, pick the same greedy tokens as on cublasGemmEx.
 */
@Tag("gpu")
class GemmTunerTest {
    /** Relative error of a bf16 output (one rounding of each element) and of fp32 ones (summation order only). */
    private static final double BF16_TOLERANCE = 1e-2;
    private static final double F32_TOLERANCE = 1e-3;

    @Test
    void everyCandidateComputesTheProductOfCublasGemmEx() {
        Gpu.assumePresent();
        int[][] shapes = {{16, 384, 256}, {128, 1536, 512}, {32, 512, 1408}};
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device)) {
            CuBlas blas = new CuBlas(device, device.allocate(CuBlas.WORKSPACE_BYTES, "workspace"));
            try (GemmTuner tuner = new GemmTuner(device, kernels, blas, GemmTuner.Mode.ON)) {
                for (int[] s : shapes) {
                    for (CuBlas.Out mode : CuBlas.Out.values()) {
                        checkShape(device, kernels, blas, tuner, new CuBlas.Product(s[0], s[1], s[2], mode));
                    }
                }
            } finally {
                blas.close();
            }
        }
    }

    private static void checkShape(CudaDevice device, CudaKernels kernels, CuBlas blas, GemmTuner tuner, CuBlas.Product p) {
        int n = p.n(), out = p.out(), in = p.in();
        DeviceBuffer w = device.allocate(2L * out * in, "w");
        DeviceBuffer x = device.allocate(2L * n * in, "x");
        DeviceBuffer y0 = device.allocate(4L * n * out, "y0");
        DeviceBuffer reference = device.allocate(4L * n * out, "reference");
        DeviceBuffer y = device.allocate(4L * n * out, "y");
        ByteBuffer host = device.allocateHost(4L * n * out);
        kernels.fillUniformBf16(w.address(), (long) out * in, 1, 0f, (float) (1 / Math.sqrt(in)));
        kernels.fillUniformBf16(x.address(), (long) n * in, 2, 0f, 1f);
        kernels.fillUniformF32(y0.address(), (long) n * out, 3, 0f, 1f);
        blas.linear(w.address(), x.address(), reference.address(), n, out, in, CuBlas.Out.F32);
        float[] product = download(device, host, reference, n * out, false);
        float[] before = download(device, host, y0, n * out, false);

        List<GemmTuner.Candidate> candidates = tuner.candidates(p, new long[] {w.address()}, w.address(), x.address(),
                y.address());
        assertTrue(candidates.size() > 1, "cuBLASLt offers no algorithm for " + p);
        int refused = 0;
        double worst = 0;
        for (GemmTuner.Candidate c : candidates) {
            cuMemcpyDtoDAsync(y.pointer(), y0.pointer(), y.bytes(), device.stream());
            if (!tuner.run(c, w.address(), x.address(), y.address())) {
                refused++;
                continue;
            }
            worst = Math.max(worst, error(p, product, before, download(device, host, y, n * out, p.mode() == CuBlas.Out.BF16),
                    c.label()));
        }
        // The tuned path itself: tuned now (fastest, then cuBLASLt's fastest forced), then from its cache.
        for (GemmTuner.Mode mode : new GemmTuner.Mode[] {GemmTuner.Mode.ON, GemmTuner.Mode.LT}) {
            tuner.setMode(mode);
            for (int call = 0; call < 2; call++) {
                cuMemcpyDtoDAsync(y.pointer(), y0.pointer(), y.bytes(), device.stream());
                tuner.linear(w.address(), x.address(), y.address(), n, out, in, p.mode());
                worst = Math.max(worst, error(p, product, before, download(device, host, y, n * out,
                        p.mode() == CuBlas.Out.BF16), "tuned (" + mode + ")"));
            }
        }
        GemmTuner.Result r = tuner.results().getFirst();
        System.out.printf("[cuda] GEMM tuner n %d [%d x %d] %s: %d candidates (%d refused) within %.2e of cublasGemmEx; "
                + "forced cuBLASLt pick %s%n", n, out, in, p.mode(), candidates.size(), refused, worst, r.winner());
        assertTrue(r.winner().startsWith("lt "), "mode LT picks a cuBLASLt algorithm: " + r);
        assertTrue(refused < candidates.size() - 1, "every cuBLASLt algorithm refused to run for " + p);
    }

    /** Relative error of {@code got} against the expected output; fails beyond the mode's tolerance. */
    private static double error(CuBlas.Product p, float[] product, float[] before, float[] got, String what) {
        float[] expected = product;
        if (p.mode() == CuBlas.Out.F32_ADD) {
            expected = new float[product.length];
            for (int i = 0; i < product.length; i++) {
                expected[i] = before[i] + product[i];
            }
        }
        // Against the product's size, so that an F32_ADD that forgot to add (an error of |before|) fails.
        double num = 0, den = 0;
        for (int i = 0; i < got.length; i++) {
            num += (got[i] - (double) expected[i]) * (got[i] - (double) expected[i]);
            den += (double) product[i] * product[i];
        }
        double err = Math.sqrt(num / den);
        double tolerance = p.mode() == CuBlas.Out.BF16 ? BF16_TOLERANCE : F32_TOLERANCE;
        assertTrue(err < tolerance, what + " on " + p + ": relative error " + err);
        return err;
    }

    private static float[] download(CudaDevice device, ByteBuffer host, DeviceBuffer src, int count, boolean bf16) {
        device.download(host, src, 0, (long) count * (bf16 ? 2 : 4));
        device.synchronize();
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = bf16 ? Bf16.toFloat(host.getShort(2 * i)) : host.getFloat(4 * i);
        }
        return out;
    }

    @Test
    void tunedGraphDecodeStepsPickTheSameGreedyTokens() {
        Gpu.assumePresent();
        ModelConfig c = new ModelConfig(Architecture.LLAMA, 512, 1024, 2, 8, 2, 64, 1000, 1e-5f, RopeScaling.plain(10000),
                512, false, false, OptionalInt.empty(), Set.of());
        try (LoadedModel model = CudaBackendVsCpuTest.randomModel(c, 5);
             CudaBackend gpu = CudaBackend.open(model, CudaOptions.defaults(512).withKvBlocks(160))) {
            for (int batch : new int[] {20, 100}) {   // graph buckets 32 and 128
                gpu.setGemmTuning(GemmTuner.Mode.OFF);
                Run plain = decode(gpu, c, batch, null);
                for (GemmTuner.Mode mode : new GemmTuner.Mode[] {GemmTuner.Mode.ON, GemmTuner.Mode.LT}) {
                    gpu.setGemmTuning(mode);
                    Run tuned = decode(gpu, c, batch, plain.tokens);
                    compare(plain, tuned, batch + " sequences, tuning " + mode);
                    int bucket = CudaBackend.bucketFor(batch);
                    long shapes = gpu.gemmTuning().stream().filter(r -> r.product().n() == bucket).count();
                    assertEquals(5, shapes, "qkv, o, gate/up, down and LM head tuned at " + bucket + " tokens before capture: "
                            + gpu.gemmTuning());
                    assertFalse(mode == GemmTuner.Mode.LT && gpu.gemmTuning().stream().anyMatch(r -> !r.winner().startsWith("lt ")),
                            "mode LT runs every product on cuBLASLt: " + gpu.gemmTuning());
                    assertTrue(gpu.graphCount() > 0, "decode steps ran as graphs");
                }
            }
        }
    }

    /** Each decode step's token ids fed in (step 0: the prompts' last greedy ids) and logits rows out. */
    private record Run(List<int[]> tokens, List<float[][]> logits) {
    }

    /**
     * {@code batch} sequences of 8 prompt tokens prefilled, then 4 graph-replayed decode steps; the ids fed
     * are this run's greedy ones, or {@code feed}'s (the same inputs, so logits compare row by row).
     */
    private static Run decode(CudaBackend gpu, ModelConfig c, int batch, List<int[]> feed) {
        Random rnd = new Random(17);
        List<SequenceForward> prefill = new ArrayList<>();
        for (int s = 0; s < batch; s++) {
            prefill.add(new SequenceForward(rnd.ints(8, 0, c.vocabSize()).toArray(), 0, new int[] {s}, LogitsMode.LAST));
        }
        List<int[]> tokens = new ArrayList<>();
        List<float[][]> logits = new ArrayList<>();
        float[][] rows = rows(gpu.forward(prefill));
        for (int step = 0; step < 5; step++) {
            int[] ids = new int[batch];
            for (int s = 0; s < batch; s++) {
                ids[s] = CudaBenchmark.argmax(rows[s]);
            }
            tokens.add(ids);
            logits.add(rows);
            if (step == 4) {
                break;
            }
            int[] in = feed == null ? ids : feed.get(step);
            List<SequenceForward> seqs = new ArrayList<>();
            for (int s = 0; s < batch; s++) {
                seqs.add(new SequenceForward(new int[] {in[s]}, 8 + step, new int[] {s}, LogitsMode.LAST));
            }
            rows = rows(gpu.forward(seqs));
        }
        return new Run(tokens, logits);
    }

    private static float[][] rows(List<float[][]> out) {
        float[][] rows = new float[out.size()][];
        for (int s = 0; s < rows.length; s++) {
            rows[s] = out.get(s)[0];
        }
        return rows;
    }

    /**
     * Same greedy ids, except where the untuned logits' top two are closer than the two runs' logits differ
     * (a tie that summation order may break either way); logits within bf16 tolerance.
     */
    private static void compare(Run plain, Run tuned, String where) {
        int rows = 0, same = 0;
        double worst = 0;
        for (int step = 0; step < plain.logits.size(); step++) {
            for (int s = 0; s < plain.logits.get(step).length; s++) {
                float[] a = plain.logits.get(step)[s], b = tuned.logits.get(step)[s];
                worst = Math.max(worst, Gpu.relativeError(b, a));
                double diff = 0;
                for (int i = 0; i < a.length; i++) {
                    diff = Math.max(diff, Math.abs(a[i] - b[i]));
                }
                rows++;
                if (plain.tokens.get(step)[s] == tuned.tokens.get(step)[s]) {
                    same++;
                } else {
                    int st = step, seq = s;
                    double gap = Gpu.top2Gap(a), d = diff;
                    assertTrue(gap <= 2 * diff, () -> where + ": step " + st + " sequence " + seq + " picks "
                            + tuned.tokens.get(st)[seq] + " instead of " + plain.tokens.get(st)[seq] + " (top-2 gap " + gap
                            + ", logits differ by " + d + ")");
                }
            }
        }
        System.out.printf("[cuda] GEMM tuner, %s: %d of %d greedy ids equal to cublasGemmEx's (the rest near-ties), "
                + "worst row relative error %.2e%n", where, same, rows, worst);
        assertTrue(worst < 0.02, where + ": logits relative error " + worst);
    }
}
