package io.kvass.worker.cuda;

import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.lora.LoraCapacity;

/**
 * How to bring up the CUDA backend.
 *
 * @param device               GPU ordinal
 * @param gpuMemoryUtilization fraction of the GPU's whole memory this process may use: weights,
 *                             activations and the K/V cache, which gets what is left
 *                             ({@code --gpu-memory-utilization}, as vLLM's)
 * @param maxModelLen          longest sequence (positions) the block tables must cover
 * @param maxNumSeqs           with max_model_len, bounds the K/V blocks worth allocating
 * @param maxTokensPerStep     activation buffers hold this many tokens; larger batches run in pieces
 * @param numKvBlocks          a fixed pool size (tests), or 0 to size the pool from the memory budget
 * @param cudaGraphs           run decode steps as CUDA graphs, one per batch-size and context bucket
 * @param lora                 LoRA adapter slots to reserve ({@code --max-loras}, {@code --max-lora-rank}); their
 *                             memory comes out of the budget before the K/V cache is sized
 */
public record CudaOptions(int device, double gpuMemoryUtilization, int blockSize, int maxModelLen, int maxNumSeqs,
                          int maxTokensPerStep, int numKvBlocks, boolean cudaGraphs, LoraCapacity lora) {

    public CudaOptions {
        if (gpuMemoryUtilization <= 0 || gpuMemoryUtilization > 1) {
            throw new IllegalArgumentException("--gpu-memory-utilization must be in (0, 1], got " + gpuMemoryUtilization);
        }
        if (blockSize < 1 || blockSize > 256 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("block size must be a power of two in 1..256, got " + blockSize);
        }
        if (maxModelLen < 1 || maxNumSeqs < 1 || maxTokensPerStep < 1 || numKvBlocks < 0 || device < 0) {
            throw new IllegalArgumentException("max_model_len, max_num_seqs and max tokens per step must be positive");
        }
        java.util.Objects.requireNonNull(lora, "lora");
        if (maxTokensPerStep > 65535) {
            throw new IllegalArgumentException("at most 65535 tokens per step (a CUDA grid dimension), got " + maxTokensPerStep);
        }
    }

    public static CudaOptions defaults(int maxModelLen) {
        return new CudaOptions(0, 0.90, 16, maxModelLen, 256, 4096, 0, true, LoraCapacity.NONE);
    }

    /**
     * From a replica's options ({@code --gpu-memory-utilization} included). The CUDA-only settings the
     * CLI does not carry come from system properties: {@code kvass.cuda.device},
     * {@code kvass.cuda.maxTokensPerStep} (4096), {@code kvass.cuda.graphs} (true).
     */
    public static CudaOptions of(ReplicaOptions replica, int maxModelLen, LoraCapacity lora) {
        return new CudaOptions(Integer.getInteger("kvass.cuda.device", 0), replica.gpuMemoryUtilization(),
                replica.blockSize(), maxModelLen, replica.maxNumSeqs(),
                Integer.getInteger("kvass.cuda.maxTokensPerStep", 4096), 0,
                Boolean.parseBoolean(System.getProperty("kvass.cuda.graphs", "true")), lora);
    }

    public CudaOptions withKvBlocks(int blocks) {
        return new CudaOptions(device, gpuMemoryUtilization, blockSize, maxModelLen, maxNumSeqs, maxTokensPerStep, blocks,
                cudaGraphs, lora);
    }

    public CudaOptions withMaxTokensPerStep(int tokens) {
        return new CudaOptions(device, gpuMemoryUtilization, blockSize, maxModelLen, maxNumSeqs, tokens, numKvBlocks,
                cudaGraphs, lora);
    }

    public CudaOptions withCudaGraphs(boolean enabled) {
        return new CudaOptions(device, gpuMemoryUtilization, blockSize, maxModelLen, maxNumSeqs, maxTokensPerStep,
                numKvBlocks, enabled, lora);
    }

    public CudaOptions withMaxNumSeqs(int seqs) {
        return new CudaOptions(device, gpuMemoryUtilization, blockSize, maxModelLen, seqs, maxTokensPerStep, numKvBlocks,
                cudaGraphs, lora);
    }

    public CudaOptions withLora(LoraCapacity capacity) {
        return new CudaOptions(device, gpuMemoryUtilization, blockSize, maxModelLen, maxNumSeqs, maxTokensPerStep,
                numKvBlocks, cudaGraphs, capacity);
    }
}
