package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;

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
 * Decode attention alone, one layer, batch 256 at context 1,025 (Llama 3 8B heads): GB/s of K/V read
 * for each kernel variant on kvass's slot-major layout, and on a head-major layout emulated by giving
 * every (sequence, kv head) its own blocks (kvHeads = 1). Plus a device-to-device copy for the
 * ceiling. Usage: {@code CudaAttentionProbe [variant-to-repeat]} (ncu runs the repeat).
 */
public final class CudaAttentionProbe {
    private CudaAttentionProbe() {
    }

    public static void main(String[] args) {
        int batch = 256, ctx = 1025, kvHeads = 8, group = 4, headDim = 128, blockSize = 16;
        int blocksPerSeq = (ctx + blockSize - 1) / blockSize;
        try (CudaDevice device = new CudaDevice(0); CudaKernels kernels = new CudaKernels(device)) {
            for (boolean headMajor : new boolean[] {false, true}) {
                int seqs = headMajor ? batch * kvHeads : batch, kv = headMajor ? 1 : kvHeads;
                int numBlocks = seqs * blocksPerSeq;
                ModelConfig c = new ModelConfig(Architecture.LLAMA, kv * group * headDim, 64, 1, kv * group, kv, headDim, 10,
                        1e-5f, RopeScaling.plain(1e4), 4096, false, false, OptionalInt.empty(), Set.of());
                List<SequenceForward> batchList = new ArrayList<>();
                for (int s = 0; s < seqs; s++) {
                    int[] table = new int[blocksPerSeq];
                    for (int b = 0; b < blocksPerSeq; b++) {
                        table[b] = s * blocksPerSeq + b;
                    }
                    batchList.add(new SequenceForward(new int[] {1}, ctx - 1, table, LogitsMode.LAST));
                }
                int maxBlocks = 4096 / blockSize;
                ByteBuffer host = device.allocateHost(StepInputs.bytes(seqs, maxBlocks));
                StepInputs in = new StepInputs(seqs, maxBlocks, host);
                in.fill(batchList, c, blockSize, numBlocks, 4096, false);
                DeviceBuffer inputs = device.allocate(StepInputs.bytes(seqs, maxBlocks), "inputs");
                device.upload(inputs, 0, host, in.uploadBytes());
                long planeBytes = (long) numBlocks * blockSize * kv * headDim * 2;
                DeviceBuffer k = device.allocate(planeBytes, "k"), v = device.allocate(planeBytes, "v");
                kernels.fillUniformBf16(k.address(), planeBytes / 2, 1, 0, 0.5f);
                kernels.fillUniformBf16(v.address(), planeBytes / 2, 2, 0, 0.5f);
                DeviceBuffer q = device.allocate(2L * seqs * group * kv * headDim, "q");
                kernels.fillUniformBf16(q.address(), (long) seqs * group * kv * headDim, 3, 0, 0.5f);
                DeviceBuffer out = device.allocate(2L * seqs * group * kv * headDim, "out");
                device.synchronize();
                double bytes = 2.0 * seqs * kv * ctx * headDim * 2;
                for (CudaKernels.AttentionVariant variant : CudaKernels.AttentionVariant.values()) {
                    Runnable launch = () -> kernels.pagedAttention(variant, seqs, kv, 1, headDim, group, q.address(),
                            k.address(), v.address(), inputs.address(in.tablesOffset()),
                            inputs.address(in.sectionOffset(StepInputs.TOKEN_SEQUENCE)),
                            inputs.address(in.sectionOffset(StepInputs.POSITIONS)), 0L, out.address(), 0L, 0L, 0L, kv * group,
                            blockSize, maxBlocks, 4096, 0.088f);
                    double ms = time(device, launch, 10);
                    System.out.printf(Locale.ROOT, "probe %s layout, %s: %.3f ms per layer, %.0f GB/s%n",
                            headMajor ? "head-major" : "slot-major", variant, ms, bytes / ms / 1e6);
                    if (args.length > 0 && args[0].equalsIgnoreCase(variant.name()) && !headMajor) {
                        launch.run();  // the launch ncu profiles
                        device.synchronize();
                    }
                }
                if (!headMajor) {
                    double ms = time(device, () -> cuMemcpyDtoDAsync(v.pointer(), k.pointer(), planeBytes, device.stream()), 5);
                    System.out.printf(Locale.ROOT, "probe device copy %.0f MB: %.3f ms, %.0f GB/s (read + write)%n",
                            planeBytes / 1e6, ms, 2 * planeBytes / ms / 1e6);
                }
            }
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
