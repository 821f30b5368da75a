package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import java.util.Locale;
import jcuda.driver.CUevent;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * The decode GEMMs of a Llama-3-8B step at 128 tokens (and 256), one shape at a time: cublasGemmEx as
 * kvass calls it against gemm.cu's decode GEMM (each variant, stream-K over one CTA per SM and one tile
 * per CTA; gate/up with its SiLU epilogue), timed over weight copies that together exceed L2. Then what
 * {@link GemmTuner} picks per shape (cublasGemmEx or a cuBLASLt algorithm) over the same copies, its time
 * against cublasGemmEx's, and what that saves per decode step of 32 layers.
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
            CudaKernels.GemmScratch gemm = CudaKernels.GemmScratch.allocate(device);
            CUevent start = new CUevent(), end = new CUevent();
            cuEventCreate(start, 0);
            cuEventCreate(end, 0);
            for (int n : new int[] {128, 256}) {
                for (int i = 0; i < shapes.length; i++) {
                    int out = shapes[i][0], in = shapes[i][1], mode = shapes[i][2];
                    long bytes = 2L * out * in;
                    int copies = (int) Math.max(1, Math.min(32, budget / bytes));
                    int reps = Math.max(copies, 16);
                    CuBlas.Out outMode = CuBlas.Out.values()[mode];
                    double base = time(device, start, end, reps, r -> blas.linear(weights.address((r % copies) * bytes),
                            x.address(), y.address(), n, out, in, outMode));
                    StringBuilder line = new StringBuilder(String.format(Locale.ROOT,
                            "[gemm] n %d %-7s [%6d x %5d]: cublasGemmEx %7.1f us (%4.2f TB/s); kvass:", n, names[i], out, in,
                            base, bytes / base / 1e6));
                    for (String kernel : new String[] {"decode_gemm_m" + (n <= 128 ? 1 : 2) + "_n1", "decode_gemm_m1_n2"}) {
                        if (n > 128 && kernel.endsWith("m1_n2")) {
                            continue;
                        }
                        // gate/up: with its SiLU epilogue where the variant has one (128 gate + 128 up rows a tile)
                        boolean silu = i == 2 && kernel.endsWith("n2");
                        int kmode = silu ? CudaKernels.GEMM_SILU : mode, kout = silu ? out / 2 : out;
                        int bn = kernel.endsWith("n2") ? 256 : 128;
                        int tiles = out / bn;
                        for (int ctas : new int[] {device.multiprocessors, tiles}) {
                            double us = time(device, start, end, reps, r -> kernels.decodeGemm(kernel, ctas,
                                    weights.address((r % copies) * bytes), x.address(), y.address(), n, kout, in, kmode, gemm));
                            line.append(String.format(Locale.ROOT, " %s/%d %.1f us (%4.2f TB/s)", kernel.substring(12), ctas, us,
                                    bytes / us / 1e6));
                        }
                    }
                    System.out.println(line);
                }
            }
            tuned(device, kernels, blas, shapes, names, weights, x, y, budget);
            blas.close();
        }
    }

    /** The tuner's pick per shape at 128 and 256 tokens, timed as the backend times it (median of launches). */
    private static void tuned(CudaDevice device, CudaKernels kernels, CuBlas blas, int[][] shapes, String[] names,
                              DeviceBuffer weights, DeviceBuffer x, DeviceBuffer y, long budget) {
        try (GemmTuner tuner = new GemmTuner(device, kernels, blas, GemmTuner.Mode.ON)) {
            for (int[] shape : shapes) {
                long bytes = 2L * shape[0] * shape[1];
                int copies = (int) Math.max(1, Math.min(32, budget / bytes));
                for (int c = 0; c < copies; c++) {
                    tuner.addWeight(shape[0], shape[1], weights.address(c * bytes));
                }
            }
            for (int n : new int[] {128, 256}) {
                double saved = 0, before = 0;
                for (int i = 0; i < shapes.length; i++) {
                    int out = shapes[i][0], in = shapes[i][1];
                    CuBlas.Product p = new CuBlas.Product(n, out, in, CuBlas.Out.values()[shapes[i][2]]);
                    GemmTuner.Result r = tuner.tune(p, weights.address(), x.address(), y.address());
                    int perStep = names[i].equals("lm head") ? 1 : 32;
                    saved += perStep * (r.gemmExUs() - r.winnerUs());
                    before += perStep * r.gemmExUs();
                    System.out.printf(Locale.ROOT, "[tune] n %d %-7s [%6d x %5d] %-7s: %s %.1f us (%4.2f TB/s) vs cublasGemmEx "
                            + "%.1f us: %.2fx; %d candidates (%d failed), tuned in %.0f ms%n", n, names[i], out, in, p.mode(),
                            r.winner(), r.winnerUs(), 2.0 * out * in / r.winnerUs() / 1e6, r.gemmExUs(),
                            r.gemmExUs() / r.winnerUs(), r.candidates(), r.failed(), r.tuningMs());
                }
                System.out.printf(Locale.ROOT, "[tune] n %d: a 32-layer decode step's GEMMs %.3f ms on cublasGemmEx, %.3f ms "
                        + "tuned (%.3f ms saved)%n", n, before / 1000, (before - saved) / 1000, saved / 1000);
            }
        }
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
}
