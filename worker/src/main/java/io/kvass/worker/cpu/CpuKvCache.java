package io.kvass.worker.cpu;

/**
 * Paged K/V memory: per layer one array of {@code numBlocks * blockSize} slots of {@code kvDim} floats.
 * A position's slot is {@code blockTable[pos / blockSize] * blockSize + pos % blockSize} — the same
 * addressing the CUDA backend's paged attention uses.
 */
final class CpuKvCache {
    final int numBlocks;
    final int blockSize;
    final int kvDim;
    final float[][] keys;   // [layer][numBlocks * blockSize * kvDim]
    final float[][] values; // [layer][numBlocks * blockSize * kvDim]

    CpuKvCache(int numLayers, int numBlocks, int blockSize, int kvDim) {
        long perLayer = (long) numBlocks * blockSize * kvDim;
        if (perLayer > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("KV cache of " + numBlocks + " blocks is too large for one CPU array per layer");
        }
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.kvDim = kvDim;
        this.keys = new float[numLayers][(int) perLayer];
        this.values = new float[numLayers][(int) perLayer];
    }

    static long bytesPerBlock(int numLayers, int blockSize, int kvDim) {
        return 2L * numLayers * blockSize * kvDim * Float.BYTES;
    }

    /** Offset of position {@code pos}'s K (or V) row in a layer array. */
    int offset(int[] blockTable, int pos) {
        return (blockTable[pos / blockSize] * blockSize + pos % blockSize) * kvDim;
    }

    void copyBlock(int src, int dst) {
        int len = blockSize * kvDim;
        for (int layer = 0; layer < keys.length; layer++) {
            System.arraycopy(keys[layer], src * len, keys[layer], dst * len, len);
            System.arraycopy(values[layer], src * len, values[layer], dst * len, len);
        }
    }
}
