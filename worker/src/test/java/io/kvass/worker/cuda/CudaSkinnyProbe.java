package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;

import java.util.Locale;
import java.util.function.IntConsumer;
import jcuda.driver.CUevent;

/**
 * Batch-1 GEMVs of a Llama-3-8B step, one shape at a time, on the skinny kernel: microseconds per launch
 * and weight-read bandwidth for each split (warps per row). The launches are replayed from a CUDA graph, as in a decode step (no host launch cost), over
 * copies of the weights that together exceed L2, so every launch reads from HBM.
 * Usage: {@code CudaSkinnyProbe}.
 */
public final class CudaSkinnyProbe {
    private CudaSkinnyProbe() {
    }

    public static void main(String[] args) {
        int[][] shapes = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}};
        String[] names = {"qkv", "o", "gate/up", "down", "lm head"};
        long budget = 1L << 30; // bytes of weight copies per shape
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device);
             CudaGraphs graphs = new CudaGraphs(device)) {
            DeviceBuffer weights = device.allocate(budget + (2L * 128256 * 4096), "w");
            DeviceBuffer x = device.allocate(2L * 14336, "x");
            DeviceBuffer y = device.allocate(4L * 128256, "y");
            kernels.fillUniformBf16(weights.address(), weights.bytes() / 2, 1, 0, 0.02f);
            kernels.fillUniformBf16(x.address(), 14336, 2, 0, 1f);
            CUevent start = new CUevent(), end = new CUevent();
            cuEventCreate(start, 0);
            cuEventCreate(end, 0);
            int key = 0;
            for (int i = 0; i < shapes.length; i++) {
                int out = shapes[i][0], in = shapes[i][1];
                long bytes = 2L * out * in;
                int copies = (int) Math.max(1, Math.min(32, budget / bytes)); // all of them in 1 GB, or one > L2
                int launches = Math.max(copies, 8);
                {
                    StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "[skinny] %-7s [%6d x %5d] "
                            + "(backend split %d):", names[i], out, in, kernels.skinnySplit(out, in)));
                    for (int split : new int[] {1, 2, 4, 8}) {
                        IntConsumer launch = r -> {
                            long w = weights.address((r % copies) * bytes);
                            kernels.skinnyGemm(w, x.address(), y.address(), 1, out, in, 1, split);
                        };
                        CudaGraphs.Key k = new CudaGraphs.Key(++key, 0, false);
                        Runnable all = () -> {
                            for (int r = 0; r < launches; r++) {
                                launch.accept(r);
                            }
                        };
                        graphs.run(k, all);          // eager, then captured
                        graphs.run(k, all);          // warm replay
                        cuEventRecord(start, device.stream());
                        for (int rep = 0; rep < 4; rep++) {
                            graphs.run(k, all);
                        }
                        cuEventRecord(end, device.stream());
                        cuEventSynchronize(end);
                        float[] ms = new float[1];
                        cuEventElapsedTime(ms, start, end);
                        double us = 1000.0 * ms[0] / (4.0 * launches);
                        line.append(String.format(Locale.ROOT, "  split %d %6.1f us (%4.2f TB/s)", split, us, bytes / us / 1e6));
                    }
                    System.out.println(line);
                }
            }
        }
    }
}
