package io.kvass.worker;

import io.kvass.worker.cpu.CpuWeightFormat;
import io.kvass.worker.cpu.CpuWeightMemory;
import java.nio.file.Path;
import java.util.Locale;

/**
 * How to bring up one model replica on this node.
 *
 * @param kvCacheBytes  memory for K/V blocks (the CPU backend's {@code --kv-cache-memory})
 * @param maxModelLen   0 = the model's own maximum
 * @param maxNumSeqs    with max_model_len, bounds the blocks worth allocating
 * @param gpuMemoryUtilization fraction of the GPU's memory the CUDA backend may use for weights,
 *                      activations and K/V blocks ({@code --gpu-memory-utilization}; ignored on the CPU)
 * @param cpuWeights    where the CPU backend keeps the weight matrices ({@code --cpu-weights}; ignored on CUDA)
 * @param cpuWeightFormat how the CPU backend stores bf16 matrices ({@code --cpu-weight-format}; ignored on CUDA)
 */
public record ReplicaOptions(Path modelDir, Device device, int blockSize, long kvCacheBytes, int maxModelLen,
                             int maxNumSeqs, int threads, double gpuMemoryUtilization, CpuWeightMemory cpuWeights,
                             CpuWeightFormat cpuWeightFormat) {

    /** vLLM's default {@code --gpu-memory-utilization}. */
    public static final double DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

    /** Where the forward pass runs. */
    public enum Device {
        CPU, CUDA;

        public static Device parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "cpu" -> CPU;
                case "cuda", "gpu" -> CUDA;
                default -> throw new IllegalArgumentException("unknown device '" + name + "'; use cpu or cuda");
            };
        }
    }

    public ReplicaOptions {
        if (blockSize < 1 || blockSize > 256 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("block size must be a power of two in 1..256, got " + blockSize);
        }
        if (kvCacheBytes <= 0) {
            throw new IllegalArgumentException("KV cache memory must be positive, got " + kvCacheBytes);
        }
        if (maxModelLen < 0 || threads < 1 || maxNumSeqs < 1) {
            throw new IllegalArgumentException("max_model_len must be >= 0, max_num_seqs and threads >= 1");
        }
        if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1)) {
            throw new IllegalArgumentException("--gpu-memory-utilization must be in (0, 1], got " + gpuMemoryUtilization);
        }
        java.util.Objects.requireNonNull(cpuWeights, "cpuWeights");
        java.util.Objects.requireNonNull(cpuWeightFormat, "cpuWeightFormat");
    }

    /** With the CPU backend's default weight memory and format. */
    public ReplicaOptions(Path modelDir, Device device, int blockSize, long kvCacheBytes, int maxModelLen,
                          int maxNumSeqs, int threads, double gpuMemoryUtilization) {
        this(modelDir, device, blockSize, kvCacheBytes, maxModelLen, maxNumSeqs, threads, gpuMemoryUtilization,
                CpuWeightMemory.DEFAULT, CpuWeightFormat.DEFAULT);
    }

    /** With the default GPU memory utilization (0.9). */
    public ReplicaOptions(Path modelDir, Device device, int blockSize, long kvCacheBytes, int maxModelLen,
                          int maxNumSeqs, int threads) {
        this(modelDir, device, blockSize, kvCacheBytes, maxModelLen, maxNumSeqs, threads, DEFAULT_GPU_MEMORY_UTILIZATION);
    }

    public ReplicaOptions withGpuMemoryUtilization(double fraction) {
        return new ReplicaOptions(modelDir, device, blockSize, kvCacheBytes, maxModelLen, maxNumSeqs, threads, fraction,
                cpuWeights, cpuWeightFormat);
    }

    public static ReplicaOptions cpu(Path modelDir) {
        return new ReplicaOptions(modelDir, Device.CPU, 16, 512L << 20, 0, 256,
                Runtime.getRuntime().availableProcessors());
    }
}
