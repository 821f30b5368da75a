package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Kernels against double-precision references on fresh random data, at the shapes the fixtures do not
 * reach (head dim 128 with 4 query heads per K/V head: Llama 3 8B).
 */
@Tag("gpu")
class CudaKernelsTest {
    private static CudaDevice device;
    private static CudaKernels kernels;
    private static CuBlas blas;

    @BeforeAll
    static void open() {
        Gpu.assumePresent();
        device = new CudaDevice(0);
        kernels = new CudaKernels(device);
        blas = new CuBlas(device, device.allocate(CuBlas.WORKSPACE_BYTES, "workspace"));
    }

    @AfterAll
    static void close() {
        if (device != null) {
            blas.close();
            kernels.close();
            device.close();
        }
    }

    private static short[] randomBf16(Random rnd, int n) {
        short[] out = new short[n];
        for (int i = 0; i < n; i++) {
            out[i] = Bf16.of(rnd.nextFloat() * 2 - 1);
        }
        return out;
    }

    /**
     * argmax_rows against the host, at row counts that give 64, 3 and 2 slices per row (so the last-block
     * combine runs, and runs again on re-armed counters): ties go to the lowest index, also across slices,
     * and a row with no logit above -inf gives 0, as the single-block kernel did.
     */
    @org.junit.jupiter.api.Test
    void argmaxRowsMatchesTheHost() {
        Random rnd = new Random(5);
        int vocab = 128256;
        CudaKernels.ArgmaxScratch scratch = CudaKernels.ArgmaxScratch.allocate(device, 300);
        for (int rows : new int[] {1, 3, 200, 300, 1}) {
            float[] logits = new float[rows * vocab];
            int[] expected = new int[rows];
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < vocab; i++) {
                    logits[r * vocab + i] = (float) rnd.nextGaussian();
                }
                int mode = r % 4;
                if (mode == 1) { // a tie between two slices: the lower index wins
                    int a = rnd.nextInt(vocab / 2), b = vocab / 2 + rnd.nextInt(vocab / 2);
                    logits[r * vocab + a] = 50f;
                    logits[r * vocab + b] = 50f;
                } else if (mode == 2) { // nothing above -inf
                    java.util.Arrays.fill(logits, r * vocab, (r + 1) * vocab, Float.NEGATIVE_INFINITY);
                }
                expected[r] = CudaBenchmark.argmax(java.util.Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
                if (mode == 2) {
                    expected[r] = 0;
                }
            }
            DeviceBuffer in = device.allocate(4L * logits.length, "logits");
            ByteBuffer host = device.allocateHost(4L * logits.length);
            host.asFloatBuffer().put(logits);
            device.upload(in, 0, host, 4L * logits.length);
            DeviceBuffer ids = device.allocate(4L * rows, "ids");
            kernels.argmaxRows(rows, in.address(), ids.address(), vocab, scratch);
            ByteBuffer got = device.allocateHost(4L * rows);
            device.download(got, ids, 0, 4L * rows);
            device.synchronize();
            int[] actual = new int[rows];
            got.asIntBuffer().get(actual);
            assertArrayEquals(expected, actual, rows + " rows");
        }
        System.out.println("[cuda] argmax_rows equals the host argmax at 1, 3, 200 and 300 rows (ties, -inf rows)");
    }

    private static DeviceBuffer upload(short[] values) {
        DeviceBuffer b = device.allocate(2L * values.length, "test");
        ByteBuffer host = device.allocateHost(2L * values.length);
        host.asShortBuffer().put(values);
        device.upload(b, 0, host, 2L * values.length);
        device.synchronize();
        return b;
    }

    private static short[] downloadBf16(DeviceBuffer b, int n) {
        ByteBuffer host = device.allocateHost(2L * n);
        device.download(host, b, 0, 2L * n);
        device.synchronize();
        short[] out = new short[n];
        host.asShortBuffer().get(out);
        return out;
    }

    /** {@code y[t, o] = sum_i w[o, i] x[t, i]} in double: a Linear layer's product. */
    private static double[] linearReference(short[] w, short[] x, int n, int out, int in) {
        double[] ref = new double[n * out];
        for (int t = 0; t < n; t++) {
            for (int o = 0; o < out; o++) {
                double s = 0;
                for (int i = 0; i < in; i++) {
                    s += (double) Bf16.toFloat(w[o * in + i]) * Bf16.toFloat(x[t * in + i]);
                }
                ref[t * out + o] = s;
            }
        }
        return ref;
    }

    /** The first {@code count} floats of y set to 1 (what F32_ADD adds to). */
    private static void fillOnes(DeviceBuffer y, int count) {
        jcuda.driver.JCudaDriver.cuMemsetD32Async(y.pointer(), Float.floatToRawIntBits(1f), count, device.stream());
    }

    /**
     * Waits for the stream, then the largest |y - ref| / (1 + |ref|) over ref's length, y read as the
     * Linear output {@code mode} writes (bf16, fp32, or fp32 with the 1 it was added to taken off).
     */
    private static double maxRelativeError(DeviceBuffer y, double[] ref, CuBlas.Out mode) {
        device.synchronize();
        double maxDiff = 0;
        if (mode == CuBlas.Out.BF16) {
            short[] got = downloadBf16(y, ref.length);
            for (int i = 0; i < ref.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(Bf16.toFloat(got[i]) - ref[i]) / (1 + Math.abs(ref[i])));
            }
        } else {
            float[] got = downloadF32(y, ref.length);
            double add = mode == CuBlas.Out.F32_ADD ? 1 : 0;
            for (int i = 0; i < ref.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i] - add) / (1 + Math.abs(ref[i])));
            }
        }
        return maxDiff;
    }

    private static float[] downloadF32(DeviceBuffer b, int n) {
        ByteBuffer host = device.allocateHost(4L * n);
        device.download(host, b, 0, 4L * n);
        device.synchronize();
        float[] out = new float[n];
        host.asFloatBuffer().get(out);
        return out;
    }

    @ParameterizedTest(name = "head dim {0}, {1} query heads per kv head, {2} kv heads")
    @CsvSource({"128,4,8", "128,7,2", "64,8,1", "16,3,2", "8,2,4", "256,2,2", "32,1,4"})
    void pagedAttentionMatchesADoubleReference(int headDim, int group, int kvHeads) {
        int heads = group * kvHeads, blockSize = 16, numBlocks = 128;
        Random rnd = new Random(headDim * 131L + group * 7L + kvHeads);
        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            free.add(b);
        }
        java.util.Collections.shuffle(free, rnd);
        // A long decode, a prefill chunk, a first token, a chunk crossing block boundaries.
        int[][] spans = {{1500, 1}, {60, 7}, {0, 1}, {250, 3}};
        List<SequenceForward> batch = new ArrayList<>();
        for (int[] span : spans) {
            int blocks = (span[0] + span[1] + blockSize - 1) / blockSize;
            int[] table = new int[blocks];
            for (int i = 0; i < blocks; i++) {
                table[i] = free.removeFirst();
            }
            batch.add(new SequenceForward(new int[span[1]], span[0], table, LogitsMode.LAST));
        }
        ModelConfig config = new ModelConfig(Architecture.LLAMA, heads * headDim, 64, 1, heads, kvHeads, headDim, 10,
                1e-5f, RopeScaling.plain(1e4), 4096, false, false, OptionalInt.empty(), Set.of());
        int maxBlocks = 4096 / blockSize, capacity = 64;
        ByteBuffer host = device.allocateHost(StepInputs.bytes(capacity, maxBlocks));
        StepInputs in = new StepInputs(capacity, maxBlocks, host);
        in.fill(batch, config, blockSize, numBlocks, 4096, false);
        int n = in.numTokens, slotElems = kvHeads * headDim;
        short[] k = randomBf16(rnd, numBlocks * blockSize * slotElems);
        short[] v = randomBf16(rnd, numBlocks * blockSize * slotElems);
        short[] q = randomBf16(rnd, n * heads * headDim);
        float scale = (float) (1 / Math.sqrt(headDim));
        double[] expected = reference(in, q, k, v, heads, group, kvHeads, headDim, blockSize);
        DeviceBuffer kd = upload(k), vd = upload(v), qd = upload(q);
        DeviceBuffer inputs = device.allocate(StepInputs.bytes(capacity, maxBlocks), "inputs");
        device.upload(inputs, 0, host, in.uploadBytes());
        DeviceBuffer out = device.allocate(2L * n * heads * headDim, "out");
        long partialRows = AttentionPlan.maxPartialRows(8, kvHeads, device.multiprocessors) + 64L * n * heads;
        DeviceBuffer partOut = device.allocate(4 * partialRows * headDim, "partials");
        DeviceBuffer partMl = device.allocate(8 * partialRows, "partials");
        DeviceBuffer counters = device.allocate(4 * partialRows, "arrival counters");
        device.zero(counters);
        AttentionPlan auto = AttentionPlan.of(n, in.maxContext, kvHeads, device.multiprocessors);
        List<AttentionPlan> plans = List.of(auto, new AttentionPlan(1, 2048, 2048), new AttentionPlan(32, 64, 2048));
        for (AttentionPlan plan : plans) {
          for (CudaKernels.AttentionVariant variant : CudaKernels.AttentionVariant.values()) {
           // The tensor-core kernel with each way of loading K/V.
           for (CudaKernels.AttentionLoads loads : variant == CudaKernels.AttentionVariant.MMA
                   ? CudaKernels.AttentionLoads.values() : new CudaKernels.AttentionLoads[] {CudaKernels.AttentionLoads.TENSOR}) {
            device.zero(out);
            kernels.setAttentionLoads(loads);
            kernels.pagedAttention(variant, n, kvHeads, plan.parts(), headDim, group, qd.address(), kd.address(), vd.address(),
                    inputs.address(in.tablesOffset()), inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                    inputs.address(in.sectionOffset(StepInputs.POSITIONS)), 0L, out.address(), partOut.address(),
                    partMl.address(), counters.address(), heads, blockSize, maxBlocks, plan.partSize(), scale, numBlocks * blockSize);
            kernels.setAttentionLoads(CudaKernels.AttentionLoads.TENSOR);
            if (plan.parts() > 1 && !CudaKernels.combinesPartitions(variant, headDim)) {
                kernels.attentionReduce(n, heads, partOut.address(), partMl.address(),
                        inputs.address(in.sectionOffset(StepInputs.POSITIONS)), 0L, out.address(), headDim, plan.parts(),
                        plan.partSize());
            }
            short[] got = downloadBf16(out, n * heads * headDim);
            double maxDiff = 0;
            for (int i = 0; i < got.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(Bf16.toFloat(got[i]) - expected[i]));
            }
            System.out.printf("[cuda] attention %s loads %s D=%d G=%d kv=%d %s: max |diff| %.2e%n", variant, loads,
                    headDim, group, kvHeads, plan, maxDiff);
            assertTrue(maxDiff < 1e-2, "attention " + variant + " loads " + loads + " " + plan + " differs by " + maxDiff);
           }
          }
        }
        // The kernels that combine their own partitions leave every arrival counter re-armed for the next launch.
        ByteBuffer left = device.allocateHost(4 * partialRows);
        device.download(left, counters, 0, 4 * partialRows);
        device.synchronize();
        int[] leftCounts = new int[(int) partialRows];
        left.asIntBuffer().get(leftCounts);
        assertTrue(java.util.Arrays.stream(leftCounts).allMatch(c -> c == 0), "arrival counters not re-armed");
    }

    /** Causal attention in double over the bf16 inputs, each token over its own sequence's blocks. */
    static double[] reference(StepInputs in, short[] q, short[] k, short[] v, int heads, int group, int kvHeads,
                              int headDim, int blockSize) {
        int n = in.numTokens, slotElems = kvHeads * headDim;
        float scale = (float) (1 / Math.sqrt(headDim));
        double[] expected = new double[n * heads * headDim];
        for (int t = 0; t < n; t++) {
            int seq = in.get(StepInputs.TOKEN_SEQUENCE, t), pos = in.get(StepInputs.POSITIONS, t);
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                double[] p = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int j = 0; j <= pos; j++) {
                    int slot = in.table(seq, j / blockSize) * blockSize + j % blockSize;
                    double s = 0;
                    for (int d = 0; d < headDim; d++) {
                        s += Bf16.toFloat(q[(t * heads + h) * headDim + d]) * Bf16.toFloat(k[slot * slotElems + kvh * headDim + d]);
                    }
                    p[j] = s * scale;
                    max = Math.max(max, p[j]);
                }
                for (int j = 0; j <= pos; j++) {
                    p[j] = Math.exp(p[j] - max);
                    sum += p[j];
                }
                for (int j = 0; j <= pos; j++) {
                    int slot = in.table(seq, j / blockSize) * blockSize + j % blockSize;
                    for (int d = 0; d < headDim; d++) {
                        expected[(t * heads + h) * headDim + d] += p[j] / sum * Bf16.toFloat(v[slot * slotElems + kvh * headDim + d]);
                    }
                }
            }
        }
        return expected;
    }

    @ParameterizedTest(name = "head dim {0}, {1} query heads per kv head")
    @CsvSource({"128,4,8", "64,2,2", "128,1,2"})
    void prefillKernelMatchesADoubleReference(int headDim, int group, int kvHeads) {
        int heads = group * kvHeads, blockSize = 16, numBlocks = 64;
        Random rnd = new Random(headDim * 31L + group);
        // A fresh prompt of 100, a chunk of 130 at position 300 (three tiles), one of 16 at 64 (a single tile).
        int[][] spans = {{0, 100}, {300, 130}, {64, 16}};
        List<SequenceForward> batch = new ArrayList<>();
        int next = numBlocks - 1;
        for (int[] span : spans) {
            int[] table = new int[(span[0] + span[1] + blockSize - 1) / blockSize];
            for (int i = 0; i < table.length; i++) {
                table[i] = next--; // descending: blocks out of order
            }
            batch.add(new SequenceForward(new int[span[1]], span[0], table, LogitsMode.NONE));
        }
        ModelConfig config = new ModelConfig(Architecture.LLAMA, heads * headDim, 64, 1, heads, kvHeads, headDim, 10,
                1e-5f, RopeScaling.plain(1e4), 4096, false, false, OptionalInt.empty(), Set.of());
        int maxBlocks = 4096 / blockSize, capacity = 512;
        ByteBuffer host = device.allocateHost(StepInputs.bytes(capacity, maxBlocks));
        StepInputs in = new StepInputs(capacity, maxBlocks, host);
        in.fill(batch, config, blockSize, numBlocks, 4096, true);
        assertTrue(in.numTiles == 6 && in.numPagedTokens == 0, "tiles " + in.numTiles);
        int n = in.numTokens;
        short[] k = randomBf16(rnd, numBlocks * blockSize * kvHeads * headDim);
        short[] v = randomBf16(rnd, numBlocks * blockSize * kvHeads * headDim);
        short[] q = randomBf16(rnd, n * heads * headDim);
        double[] expected = reference(in, q, k, v, heads, group, kvHeads, headDim, blockSize);
        DeviceBuffer kd = upload(k), vd = upload(v), qd = upload(q);
        DeviceBuffer inputs = device.allocate(StepInputs.bytes(capacity, maxBlocks), "inputs");
        device.upload(inputs, 0, host, in.uploadBytes());
        DeviceBuffer out = device.allocate(2L * n * heads * headDim, "out");
        device.zero(out);
        kernels.flashPrefill(in.numTiles, heads, kvHeads, headDim, qd.address(), kd.address(), vd.address(),
                inputs.address(in.tablesOffset()), inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                inputs.address(in.sectionOffset(StepInputs.POSITIONS)), inputs.address(in.sectionOffset(StepInputs.TILES)),
                out.address(), blockSize, maxBlocks, (float) (1 / Math.sqrt(headDim)));
        short[] got = downloadBf16(out, n * heads * headDim);
        double maxDiff = 0;
        for (int i = 0; i < got.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(Bf16.toFloat(got[i]) - expected[i]));
        }
        System.out.printf("[cuda] prefill attention D=%d G=%d kv=%d: max |diff| %.2e%n", headDim, group, kvHeads, maxDiff);
        assertTrue(maxDiff < 1e-2, "prefill attention differs by " + maxDiff);
    }

    @ParameterizedTest(name = "{0} tokens")
    @ValueSource(ints = {1, 3, 8, 40})
    void linearLayersMatchADoubleReference(int n) {
        int out = 777, in = 1024;
        Random rnd = new Random(n);
        short[] w = randomBf16(rnd, out * in), x = randomBf16(rnd, n * in);
        double[] ref = linearReference(w, x, n, out, in);
        DeviceBuffer wd = upload(w), xd = upload(x);
        DeviceBuffer y = device.allocate(4L * n * out, "y");
        for (String impl : n <= CudaKernels.SKINNY_MAX_TOKENS ? List.of("skinny", "cublas") : List.of("cublas")) {
            for (CuBlas.Out mode : CuBlas.Out.values()) {
                fillOnes(y, n * out);
                if (impl.equals("skinny")) {
                    kernels.skinnyGemm(wd.address(), xd.address(), y.address(), n, out, in, mode.ordinal());
                } else {
                    blas.linear(wd.address(), xd.address(), y.address(), n, out, in, mode);
                }
                double maxDiff = maxRelativeError(y, ref, mode);
                System.out.printf("[cuda] linear %s n=%d %s: max rel diff %.2e%n", impl, n, mode, maxDiff);
                assertTrue(maxDiff < (mode == CuBlas.Out.BF16 ? 5e-3 : 1e-4), impl + " " + mode + " differs by " + maxDiff);
            }
        }
    }

    /**
     * gemm.cu's stream-K wgmma GEMM (Hopper only) against a double reference, every epilogue: shapes that
     * give each variant (m <= 128 with 256- and 128-row tiles, m up to 256), tiles cut into many CTA
     * shares (small problems over 132 SMs: owners adding several partial sums) and tiles that are a
     * single k-block; the fused SiLU against silu_mul over the bf16 [gate; up] product. Each shape runs
     * twice, so the flags must be back at 0 after a launch.
     */
    @ParameterizedTest(name = "m={0} n={1} k={2}")
    @org.junit.jupiter.params.provider.CsvSource({"9,512,256", "40,768,1024", "128,1024,2048", "100,384,640",
            "200,512,512", "256,256,64", "64,6144,128", "16,33792,128"})
    void decodeGemmMatchesADoubleReference(int m, int n, int k) {
        org.junit.jupiter.api.Assumptions.assumeTrue(kernels.decodeGemmVariant(m, n, k, 0) != null,
                "the decode GEMM needs sm_90 (this GPU: " + device.computeCapability + ")");
        Random rnd = new Random(m * 31 + n);
        short[] w = randomBf16(rnd, n * k), x = randomBf16(rnd, m * k);
        double[] ref = linearReference(w, x, m, n, k);
        DeviceBuffer wd = upload(w), xd = upload(x);
        DeviceBuffer y = device.allocate(4L * m * n, "y");
        CudaKernels.GemmScratch scratch = CudaKernels.GemmScratch.allocate(device);
        for (int repeat = 0; repeat < 2; repeat++) {
            for (CuBlas.Out mode : CuBlas.Out.values()) {
                fillOnes(y, m * n);
                kernels.decodeGemm(wd.address(), xd.address(), y.address(), m, n, k, mode.ordinal(), scratch);
                double maxDiff = maxRelativeError(y, ref, mode);
                System.out.printf("[cuda] decode gemm m=%d n=%d k=%d %s: max rel diff %.2e%n", m, n, k, mode, maxDiff);
                assertTrue(maxDiff < (mode == CuBlas.Out.BF16 ? 5e-3 : 1e-4), mode + " differs by " + maxDiff);
            }
            // The weight as a fused [gate; up] of ffn = n / 2: act = silu(bf16 gate) * bf16 up, as silu_mul computes it.
            int ffn = n / 2;
            if (kernels.decodeGemmVariant(m, ffn, k, CudaKernels.GEMM_SILU) != null) {
                DeviceBuffer act = device.allocate(2L * m * ffn, "act");
                kernels.decodeGemm(wd.address(), xd.address(), act.address(), m, ffn, k, CudaKernels.GEMM_SILU, scratch);
                device.synchronize();
                short[] got = downloadBf16(act, m * ffn);
                double maxDiff = 0;
                for (int t = 0; t < m; t++) {
                    for (int j = 0; j < ffn; j++) {
                        double g = Bf16.toFloat(Bf16.of((float) ref[t * n + j]));
                        double u = Bf16.toFloat(Bf16.of((float) ref[t * n + ffn + j]));
                        double want = g / (1 + Math.exp(-g)) * u;
                        maxDiff = Math.max(maxDiff, Math.abs(Bf16.toFloat(got[t * ffn + j]) - want) / (1 + Math.abs(want)));
                    }
                }
                System.out.printf("[cuda] decode gemm + silu m=%d ffn=%d k=%d: max rel diff %.2e%n", m, ffn, k, maxDiff);
                assertTrue(maxDiff < 2e-2, "fused SiLU differs by " + maxDiff);
            }
        }
    }
}
