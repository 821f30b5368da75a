package io.kvass.worker.cuda;

import io.kvass.worker.model.ModelConfig;

/**
 * Paged K/V memory on the GPU, one allocation: per layer a K plane and a V plane, each
 * {@code [numBlocks, blockSize, kvHeads, headDim]} bf16. A position's slot is
 * {@code blockTable[pos / blockSize] * blockSize + pos % blockSize}, as in the CPU backend.
 */
final class CudaKvCache {
    final int numBlocks;
    final int blockSize;
    final int numLayers;
    final long planeBytes;
    final int blockBytes;
    private final DeviceBuffer memory;

    CudaKvCache(CudaDevice device, ModelConfig c, int numBlocks, int blockSize) {
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.numLayers = c.numLayers();
        this.blockBytes = 2 * blockSize * c.kvDim();
        this.planeBytes = (long) numBlocks * blockBytes;
        this.memory = device.allocate(2 * numLayers * planeBytes, "KV cache of " + numBlocks + " blocks");
    }

    /** GPU bytes one block takes across all layers, K and V. */
    static long bytesPerBlock(ModelConfig c, int blockSize) {
        return 2L * c.numLayers() * 2L * blockSize * c.kvDim();
    }

    long keys(int layer) {
        return memory.address(2L * layer * planeBytes);
    }

    long values(int layer) {
        return memory.address((2L * layer + 1) * planeBytes);
    }

    long base() {
        return memory.address();
    }

    int planes() {
        return 2 * numLayers;
    }
}
