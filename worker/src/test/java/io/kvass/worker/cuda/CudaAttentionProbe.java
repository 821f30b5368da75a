package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.Set;
import jcuda.driver.CUevent;

/**
 * Decode attention alone, one layer at context 1,025 (Llama 3 8B heads: 8 kv heads, group 4, dim 128):
 * GB/s of K/V read by the tensor-core kernel, with 16-byte cp.async loads into padded rows and with
 * tensor-map (TMA) boxes into swizzled rows, alternating, at batch 128 and 256; the kernel without its
 * arithmetic (probe_attention.cu); the reads alone (probe.cu: today's pattern with dense and padded rows,
 * and whole paged blocks per sequence). Plus the ceilings: a read-only kernel and a
 * device-to-device copy. Usage: {@code CudaAttentionProbe [ncu]}
 * (with ncu: one launch each of batch 128 with each way of loading).
 *
 * <p>Session 4's sweep (slot-major vs head-plane layouts, shuffled block tables, waves, split-K) is in
 * docs/benchmarks.md; none of it mattered.
 */
public final class CudaAttentionProbe {
    private static final int CTX = 1025, KV_HEADS = 8, GROUP = 4, HEAD_DIM = 128, BLOCK = 16, MAX_LEN = 4096;
    private static final int HIDDEN = KV_HEADS * GROUP * HEAD_DIM;

    private CudaAttentionProbe() {
    }

    public static void main(String[] args) {
        boolean ncu = args.length > 0;
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device)) {
            int sms = device.multiprocessors;
            System.out.printf(Locale.ROOT, "probe %d SMs; 3 blocks/SM = %d blocks per wave%n", sms, 3 * sms);
            Layer b128 = new Layer(device, kernels, 128), b256 = new Layer(device, kernels, 256);
            if (ncu) {
                for (CudaKernels.AttentionLoads loads : CudaKernels.AttentionLoads.values()) {
                    kernels.setAttentionLoads(loads);
                    b128.attention().run();
                }
                device.synchronize();
                return;
            }
            long bytes = 1L << 30;
            DeviceBuffer a = device.allocate(bytes, "a"), b = device.allocate(bytes, "b"), sink = device.allocate(16, "sink");
            for (int rep = 0; rep < 3; rep++) {
                double ms = time(device, () -> kernels.readOnly(a.address(), bytes, sink.address()), 5);
                System.out.printf(Locale.ROOT, "probe read-only %d MB: %.3f ms, %.0f GB/s%n", bytes >> 20, ms, bytes / ms / 1e6);
                ms = time(device, () -> cuMemcpyDtoDAsync(b.pointer(), a.pointer(), bytes / 4, device.stream()), 5);
                System.out.printf(Locale.ROOT, "probe device copy %d MB: %.3f ms, %.0f GB/s (read + write)%n",
                        bytes >> 22, ms, 2 * (bytes / 4) / ms / 1e6);
            }
            sweepLoads(device, kernels, List.of(b128, b256), "", Layer::attention);
            // The kernel itself without the tile arithmetic (loads, barriers, prologue, epilogue kept).
            sweepLoads(device, kernels, List.of(b128, b256), ", no arithmetic", Layer::withoutMath);
            kernels.setAttentionLoads(CudaKernels.AttentionLoads.TENSOR);
            // The read patterns alone: today's (a block per sequence and kv head, a warp's tile 16 rows of 256
            // bytes 2 KB apart) and whole paged blocks (32 KB runs) per sequence, in 1 or 2 parts, 2 or 3 stages.
            for (int rep = 0; rep < 3; rep++) {
                for (Layer layer : List.of(b128, b256)) {
                    int blocks = CTX / BLOCK + 1, maxBlocks = MAX_LEN / BLOCK;
                    double patternBytes = 2.0 * layer.batch * blocks * BLOCK * KV_HEADS * HEAD_DIM * 2;
                    long tables = layer.inputs.address(layer.in.tablesOffset());
                    for (int stride : new int[] {HEAD_DIM * 2, HEAD_DIM * 2 + 16}) {
                        double ms = time(device, () -> kernels.readPatternHead(layer.k.address(), layer.v.address(), tables,
                                maxBlocks, layer.batch, blocks, KV_HEADS, HEAD_DIM * 2, stride, sink.address()), 20);
                        System.out.printf(Locale.ROOT, "probe batch %3d read pattern per (sequence, kv head), rows %d bytes "
                                + "apart: %.4f ms, %.0f GB/s%n", layer.batch, stride, ms, patternBytes / ms / 1e6);
                    }
                    for (int parts : new int[] {1, 2}) {
                        for (int stages : new int[] {2}) {
                            double ms = time(device, () -> kernels.readPatternSequence(layer.k.address(), layer.v.address(), tables,
                                    maxBlocks, layer.batch, parts, blocks, BLOCK * KV_HEADS * HEAD_DIM * 2, stages,
                                    sink.address()), 20);
                            System.out.printf(Locale.ROOT, "probe batch %3d read pattern per sequence, %d part(s), %d stages: "
                                    + "%.4f ms, %.0f GB/s%n", layer.batch, parts, stages, ms, patternBytes / ms / 1e6);
                        }
                    }
                }
            }
        }
    }

    /** Each way of loading K/V, for each layer, three times: GB/s of {@code kernel}'s launches. */
    private static void sweepLoads(CudaDevice device, CudaKernels kernels, List<Layer> layers, String label,
                                   java.util.function.Function<Layer, Runnable> kernel) {
        for (int rep = 0; rep < 3; rep++) {
            for (Layer layer : layers) {
                for (CudaKernels.AttentionLoads loads : CudaKernels.AttentionLoads.values()) {
                    kernels.setAttentionLoads(loads);
                    double ms = time(device, kernel.apply(layer), 20);
                    System.out.printf(Locale.ROOT, "probe batch %3d %-8s loads%s: %.4f ms per layer, %.0f GB/s%n",
                            layer.batch, loads, label, ms, layer.kvBytes() / ms / 1e6);
                }
            }
        }
    }

    /** One layer's K/V for {@code batch} sequences at context 1,025 (block tables in order), q and outputs. */
    private static final class Layer {
        final int batch;
        final CudaKernels kernels;
        final StepInputs in;
        final DeviceBuffer inputs, k, v, q, out, partOut, partMl, counters;
        final int slots;

        Layer(CudaDevice device, CudaKernels kernels, int batch) {
            this.batch = batch;
            this.kernels = kernels;
            int blocksPerSeq = (CTX + BLOCK - 1) / BLOCK, poolBlocks = batch * blocksPerSeq;
            this.slots = poolBlocks * BLOCK;
            List<SequenceForward> list = new ArrayList<>();
            for (int s = 0; s < batch; s++) {
                int[] table = new int[blocksPerSeq];
                for (int b = 0; b < blocksPerSeq; b++) {
                    table[b] = s * blocksPerSeq + b;
                }
                list.add(new SequenceForward(new int[] {1}, CTX - 1, table, LogitsMode.LAST));
            }
            ModelConfig c = new ModelConfig(Architecture.LLAMA, HIDDEN, 64, 1, KV_HEADS * GROUP, KV_HEADS, HEAD_DIM, 10,
                    1e-5f, RopeScaling.plain(1e4), MAX_LEN, false, false, OptionalInt.empty(), Set.of());
            int maxBlocks = MAX_LEN / BLOCK;
            ByteBuffer host = device.allocateHost(StepInputs.bytes(batch, maxBlocks));
            in = new StepInputs(batch, maxBlocks, host);
            in.fill(list, c, BLOCK, poolBlocks, MAX_LEN, false);
            inputs = device.allocate(StepInputs.bytes(batch, maxBlocks), "inputs");
            device.upload(inputs, 0, host, in.uploadBytes());
            long cacheBytes = (long) poolBlocks * BLOCK * KV_HEADS * HEAD_DIM * 2;
            long qElems = (long) batch * HIDDEN;
            k = device.allocate(cacheBytes, "k");
            v = device.allocate(cacheBytes, "v");
            q = device.allocate(2 * qElems, "q");
            out = device.allocate(2 * qElems, "out");
            partOut = device.allocate(4L * 16, "part_out");  // one partition: unused
            partMl = device.allocate(4L * 16, "part_ml");
            counters = device.allocate(4L * batch * KV_HEADS, "counters");
            kernels.fillUniformBf16(k.address(), cacheBytes / 2, 1, 0, 0.5f);
            kernels.fillUniformBf16(v.address(), cacheBytes / 2, 2, 0, 0.5f);
            kernels.fillUniformBf16(q.address(), qElems, 3, 0, 0.5f);
            cuMemsetD32Async(counters.pointer(), 0, (long) batch * KV_HEADS, device.stream());
            device.synchronize();
        }

        double kvBytes() {
            return 2.0 * batch * KV_HEADS * CTX * HEAD_DIM * 2;
        }

        Runnable withoutMath() {
            return () -> kernels.pagedAttentionWithoutMath(batch, KV_HEADS, HEAD_DIM, GROUP, q.address(), k.address(),
                    v.address(), inputs.address(in.tablesOffset()), inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                    inputs.address(in.sectionOffset(StepInputs.POSITIONS)), out.address(), counters.address(),
                    KV_HEADS * GROUP, BLOCK, MAX_LEN / BLOCK, MAX_LEN, 0.088f, slots);
        }

        Runnable attention() {
            return () -> kernels.pagedAttention(CudaKernels.AttentionVariant.MMA, batch, KV_HEADS, 1, HEAD_DIM, GROUP,
                    q.address(), k.address(), v.address(), inputs.address(in.tablesOffset()),
                    inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                    inputs.address(in.sectionOffset(StepInputs.POSITIONS)), 0L, out.address(), partOut.address(),
                    partMl.address(), counters.address(), KV_HEADS * GROUP, BLOCK, MAX_LEN / BLOCK, MAX_LEN, 0.088f, slots);
        }
    }

    private static double time(CudaDevice device, Runnable op, int reps) {
        op.run();
        CUevent start = new CUevent(), end = new CUevent();
        cuEventCreate(start, 0);
        cuEventCreate(end, 0);
        cuEventRecord(start, device.stream());
        for (int i = 0; i < reps; i++) {
            op.run();
        }
        cuEventRecord(end, device.stream());
        cuEventSynchronize(end);
        float[] ms = new float[1];
        cuEventElapsedTime(ms, start, end);
        return ms[0] / reps;
    }
}
