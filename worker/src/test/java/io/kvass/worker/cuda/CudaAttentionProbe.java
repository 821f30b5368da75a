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
import java.util.Random;
import java.util.Set;
import jcuda.driver.CUevent;

/**
 * Decode attention alone, one layer at context 1,025 (Llama 3 8B heads: 8 kv heads, group 4, dim 128):
 * GB/s of K/V read by the tensor-core kernel for
 * <ul>
 *   <li>two cache layouts: kvass's slot-major {@code [slots][kv heads][D]}, and head planes
 *       {@code [kv heads][slots][D]} (emulated by giving every (sequence, kv head) its own table into its
 *       head's region of one-head slots);
 *   <li>block tables in order (a fresh pool) or shuffled (a pool after churn);
 *   <li>batch sizes around whole waves of thread blocks (3 per SM), and split-K partition counts.
 * </ul>
 * Plus a device-to-device copy for the ceiling. Usage: {@code CudaAttentionProbe [ncu]} (with ncu: one
 * launch of slot-major batch 256).
 */
public final class CudaAttentionProbe {
    private static final int CTX = 1025, KV_HEADS = 8, GROUP = 4, HEAD_DIM = 128, BLOCK = 16, MAX_LEN = 4096;

    private CudaAttentionProbe() {
    }

    public static void main(String[] args) {
        boolean ncu = args.length > 0;
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device)) {
            int sms = device.multiprocessors;
            System.out.printf(Locale.ROOT, "probe %d SMs; 3 blocks/SM = %d blocks per wave%n", sms, 3 * sms);
            if (ncu) {
                run(device, kernels, 256, false, false, 1, true);
                return;
            }
            for (int batch : new int[] {128, 256}) {
                for (boolean shuffled : new boolean[] {false, true}) {
                    for (boolean headPlanes : new boolean[] {false, true}) {
                        run(device, kernels, batch, headPlanes, shuffled, 1, false);
                    }
                }
            }
            // Wave quantization: 99 x 8 = 2 waves of 396, 148 x 8 = 2.99, 128 x 8 = 2.59.
            for (int batch : new int[] {66, 99, 112, 128, 132, 148}) {
                run(device, kernels, batch, false, false, 1, false);
            }
            for (int parts : new int[] {2, 3, 4}) {
                run(device, kernels, 128, false, false, parts, false);
                run(device, kernels, 128, true, false, parts, false);
            }
            long bytes = 256L * 1024 * 1024;
            DeviceBuffer a = device.allocate(bytes, "a"), b = device.allocate(bytes, "b");
            double ms = time(device, () -> cuMemcpyDtoDAsync(b.pointer(), a.pointer(), bytes, device.stream()), 5);
            System.out.printf(Locale.ROOT, "probe device copy %d MB: %.3f ms, %.0f GB/s (read + write)%n",
                    bytes >> 20, ms, 2 * bytes / ms / 1e6);
        }
    }

    private static void run(CudaDevice device, CudaKernels kernels, int batch, boolean headPlanes, boolean shuffled,
                            int parts, boolean once) {
        int blocksPerSeq = (CTX + BLOCK - 1) / BLOCK, poolBlocks = batch * blocksPerSeq;
        int[] ids = new int[poolBlocks];
        for (int i = 0; i < poolBlocks; i++) {
            ids[i] = i;
        }
        if (shuffled) {
            Random random = new Random(7);
            for (int i = poolBlocks - 1; i > 0; i--) {
                int j = random.nextInt(i + 1), t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
            }
        }
        // Head planes: item s * 8 + h reads head h's plane (blocks h * poolBlocks + id) with one kv head.
        int items = headPlanes ? batch * KV_HEADS : batch, kv = headPlanes ? 1 : KV_HEADS;
        List<SequenceForward> list = new ArrayList<>();
        for (int item = 0; item < items; item++) {
            int s = headPlanes ? item / KV_HEADS : item, plane = headPlanes ? item % KV_HEADS : 0;
            int[] table = new int[blocksPerSeq];
            for (int b = 0; b < blocksPerSeq; b++) {
                table[b] = plane * poolBlocks + ids[s * blocksPerSeq + b];
            }
            list.add(new SequenceForward(new int[] {1}, CTX - 1, table, LogitsMode.LAST));
        }
        ModelConfig c = new ModelConfig(Architecture.LLAMA, kv * GROUP * HEAD_DIM, 64, 1, kv * GROUP, kv, HEAD_DIM, 10,
                1e-5f, RopeScaling.plain(1e4), MAX_LEN, false, false, OptionalInt.empty(), Set.of());
        int maxBlocks = MAX_LEN / BLOCK, numBlocks = poolBlocks * KV_HEADS / kv;
        ByteBuffer host = device.allocateHost(StepInputs.bytes(items, maxBlocks));
        StepInputs in = new StepInputs(items, maxBlocks, host);
        in.fill(list, c, BLOCK, numBlocks, MAX_LEN, false);
        // NOTE: buffers live until the device closes (about 14 GB over the whole sweep).
        DeviceBuffer inputs = device.allocate(StepInputs.bytes(items, maxBlocks), "inputs");
        device.upload(inputs, 0, host, in.uploadBytes());
        long planeBytes = (long) poolBlocks * BLOCK * KV_HEADS * HEAD_DIM * 2;
        long qElems = (long) items * GROUP * kv * HEAD_DIM;
        int partSize = parts == 1 ? MAX_LEN : (CTX + parts - 1) / parts + 63 & ~63;
        long partialRows = (long) items * kv * GROUP * parts;
        DeviceBuffer k = device.allocate(planeBytes, "k"), v = device.allocate(planeBytes, "v");
        DeviceBuffer q = device.allocate(2 * qElems, "q"), out = device.allocate(2 * qElems, "out");
        DeviceBuffer partOut = device.allocate(4 * partialRows * HEAD_DIM, "part_out");
        DeviceBuffer partMl = device.allocate(8 * partialRows, "part_ml");
        DeviceBuffer counters = device.allocate(4L * items * kv, "counters");
        kernels.fillUniformBf16(k.address(), planeBytes / 2, 1, 0, 0.5f);
        kernels.fillUniformBf16(v.address(), planeBytes / 2, 2, 0, 0.5f);
        kernels.fillUniformBf16(q.address(), qElems, 3, 0, 0.5f);
        cuMemsetD32Async(counters.pointer(), 0, (long) items * kv, device.stream());
        device.synchronize();
        Runnable launch = () -> kernels.pagedAttention(CudaKernels.AttentionVariant.MMA, items, kv, parts, HEAD_DIM,
                GROUP, q.address(), k.address(), v.address(), inputs.address(in.tablesOffset()),
                inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                inputs.address(in.sectionOffset(StepInputs.POSITIONS)), 0L, out.address(), partOut.address(),
                partMl.address(), counters.address(), kv * GROUP, BLOCK, maxBlocks, partSize, 0.088f);
        if (once) {
            launch.run();
            device.synchronize();
            return;
        }
        double ms = time(device, launch, 20);
        double bytes = 2.0 * batch * KV_HEADS * CTX * HEAD_DIM * 2;
        System.out.printf(Locale.ROOT, "probe batch %3d %-11s %-8s parts %d (%5d blocks): %.4f ms per layer, %.0f GB/s%n",
                batch, headPlanes ? "head-planes" : "slot-major", shuffled ? "shuffled" : "in-order", parts,
                items * kv * parts, ms, bytes / ms / 1e6);
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
