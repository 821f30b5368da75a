package io.kvass.worker.cuda;

/**
 * How a step's attention splits the keys (split-K): {@code parts} partitions of {@code partSize}
 * keys, enough thread blocks to fill the GPU when few tokens attend to long contexts (decode) and a
 * single partition when the tokens alone fill it (large batches, prefill). Derived only from the
 * step's shape bucket, so a CUDA graph captured for a bucket fits every step in it.
 *
 * @param contextBucket the longest context this plan covers (a power of two, at least 64)
 */
record AttentionPlan(int parts, int partSize, int contextBucket) {
    /** Keys per partition are a multiple of this (the kernels' chunk). */
    static final int GRANULE = 64;
    /** Thread blocks per multiprocessor worth aiming for. */
    private static final int BLOCKS_PER_SM = 4;

    static AttentionPlan of(int tokens, int maxContext, int kvHeads, int multiprocessors) {
        int bucket = Math.max(GRANULE, Integer.highestOneBit(Math.max(1, maxContext - 1)) << 1);
        long blocksPerPart = (long) tokens * kvHeads;
        int wanted = (int) Math.max(1, (BLOCKS_PER_SM * (long) multiprocessors + blocksPerPart - 1) / blocksPerPart);
        int partSize = roundUp(ceilDiv(bucket, wanted), GRANULE);
        return new AttentionPlan(ceilDiv(bucket, partSize), partSize, bucket);
    }

    /** Partial-result rows ({@code tokens * heads * parts}) the largest plan can need: see {@link #of}. */
    static long maxPartialRows(int maxGroup, int kvHeads, int multiprocessors) {
        // parts > 1 only when tokens * kvHeads < BLOCKS_PER_SM * SMs, and parts <= wanted, so
        // tokens * kvHeads * parts < 2 * BLOCKS_PER_SM * SMs.
        return 2L * BLOCKS_PER_SM * multiprocessors * maxGroup + (long) maxGroup * kvHeads;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static int roundUp(int a, int b) {
        return ceilDiv(a, b) * b;
    }
}
