package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSA;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSB;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasLtCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmul;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoGetHeuristic;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutCreate;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import java.util.Locale;
import jcuda.driver.CUevent;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * The decode GEMMs of a Llama-3-8B step at 128 tokens (and 256), one shape at a time: cublasGemmEx as
 * kvass calls it, against every algorithm cuBLASLt's heuristic offers for the same product, timed over
 * weight copies that together exceed L2. Says whether autotuning the algorithm per shape is worth it.
 * Usage: {@code CudaGemmProbe}.
 */
public final class CudaGemmProbe {
    private CudaGemmProbe() {
    }

    public static void main(String[] args) {
        int[][] shapes = {{6144, 4096, 1}, {4096, 4096, 2}, {28672, 4096, 0}, {4096, 14336, 2}, {128256, 4096, 1}};
        String[] names = {"qkv", "o", "gate/up", "down", "lm head"};
        long budget = 1L << 30;
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device)) {
            DeviceBuffer workspace = device.allocate(CuBlas.WORKSPACE_BYTES, "workspace");
            CuBlas blas = new CuBlas(device, workspace);
            DeviceBuffer weights = device.allocate(budget + 2L * 128256 * 4096, "w");
            DeviceBuffer x = device.allocate(2L * 256 * 14336, "x");
            DeviceBuffer y = device.allocate(4L * 256 * 128256, "y");
            kernels.fillUniformBf16(weights.address(), weights.bytes() / 2, 1, 0, 0.02f);
            kernels.fillUniformBf16(x.address(), x.bytes() / 2, 2, 0, 1f);
            device.synchronize();
            cublasLtContext lt = new cublasLtContext();
            check(cublasLtCreate(lt), "cublasLtCreate");
            CUstream_st stream = new CUstream_st(CuBlas.raw(device.stream().handle()));
            CUevent start = new CUevent(), end = new CUevent();
            cuEventCreate(start, 0);
            cuEventCreate(end, 0);
            FloatPointer one = new FloatPointer(1f), zero = new FloatPointer(0f);
            for (int n : new int[] {128, 256}) {
                for (int i = 0; i < shapes.length; i++) {
                    int out = shapes[i][0], in = shapes[i][1], mode = shapes[i][2];
                    long bytes = 2L * out * in;
                    int copies = (int) Math.max(1, Math.min(32, budget / bytes));
                    int reps = Math.max(copies, 16);
                    CuBlas.Out outMode = CuBlas.Out.values()[mode];
                    double base = time(device, start, end, reps, r -> blas.linear(weights.address((r % copies) * bytes),
                            x.address(), y.address(), n, out, in, outMode));
                    // cuBLASLt: D[out, n] = op(A)[out, in] B[in, n] (column-major), A = w^T stored [in, out].
                    PointerPointer<?> pp = new PointerPointer<>(1);
                    check(cublasLtMatmulDescCreate(pp, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
                    cublasLtMatmulDescOpaque_t desc = new cublasLtMatmulDescOpaque_t(pp.get(0));
                    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, new IntPointer(new int[] {CUBLAS_OP_T}), 4), "transa");
                    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, new IntPointer(new int[] {CUBLAS_OP_N}), 4), "transb");
                    int yType = mode == 0 ? CUDA_R_16BF : CUDA_R_32F;
                    cublasLtMatrixLayoutOpaque_t a = layout(CUDA_R_16BF, in, out, in);
                    cublasLtMatrixLayoutOpaque_t b = layout(CUDA_R_16BF, in, n, in);
                    cublasLtMatrixLayoutOpaque_t c = layout(yType, out, n, out);
                    PointerPointer<?> pp2 = new PointerPointer<>(1);
                    check(cublasLtMatmulPreferenceCreate(pp2), "pref");
                    cublasLtMatmulPreferenceOpaque_t pref = new cublasLtMatmulPreferenceOpaque_t(pp2.get(0));
                    check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                            new LongPointer(new long[] {CuBlas.WORKSPACE_BYTES}), 8), "pref ws");
                    int requested = 32;
                    cublasLtMatmulHeuristicResult_t results = new cublasLtMatmulHeuristicResult_t(requested);
                    IntPointer returned = new IntPointer(1);
                    check(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, requested, results, returned), "heuristic");
                    StringBuilder line = new StringBuilder(String.format(Locale.ROOT,
                            "[gemm] n %d %-7s [%6d x %5d]: cublasGemmEx %7.1f us (%4.2f TB/s); cublasLt %d algos:", n,
                            names[i], out, in, base, bytes / base / 1e6, returned.get()));
                    double best = Double.MAX_VALUE;
                    int bestIndex = -1;
                    for (int k = 0; k < returned.get(); k++) {
                        cublasLtMatmulHeuristicResult_t res = results.getPointer(k);
                        FloatPointer beta = mode == 2 ? one : zero;
                        double us = time(device, start, end, reps, r -> check(cublasLtMatmul(lt, desc, one,
                                CuBlas.raw(weights.address((r % copies) * bytes)), a, CuBlas.raw(x.address()), b, beta,
                                CuBlas.raw(y.address()), c, CuBlas.raw(y.address()), c, res.algo(),
                                CuBlas.raw(workspace.address()), CuBlas.WORKSPACE_BYTES, stream), "matmul"));
                        line.append(String.format(Locale.ROOT, " %.1f", us));
                        if (us < best) {
                            best = us;
                            bestIndex = k;
                        }
                    }
                    line.append(String.format(Locale.ROOT, " | best #%d %.1f us (%4.2f TB/s, %.2fx)", bestIndex, best,
                            bytes / best / 1e6, base / best));
                    System.out.println(line);
                }
            }
            blas.close();
        }
    }

    private static cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
        PointerPointer<?> pp = new PointerPointer<>(1);
        check(cublasLtMatrixLayoutCreate(pp, type, rows, cols, ld), "layout");
        return new cublasLtMatrixLayoutOpaque_t(pp.get(0));
    }

    /** Microseconds per launch: {@code reps} launches (after as many to warm up), between two events. */
    private static double time(CudaDevice device, CUevent start, CUevent end, int reps, java.util.function.IntConsumer launch) {
        for (int r = 0; r < reps; r++) {
            launch.accept(r);
        }
        cuEventRecord(start, device.stream());
        for (int r = 0; r < reps; r++) {
            launch.accept(r);
        }
        cuEventRecord(end, device.stream());
        cuEventSynchronize(end);
        float[] ms = new float[1];
        cuEventElapsedTime(ms, start, end);
        return 1000.0 * ms[0] / reps;
    }

    private static void check(int status, String what) {
        if (status != 0) {
            throw new IllegalStateException(what + " failed with cuBLAS status " + status);
        }
    }
}
