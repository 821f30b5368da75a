package io.kvass.worker.cuda;

/**
 * How a step's attention splits the keys (split-K): {@code parts} partitions of {@code partSize}
 * keys, enough thread blocks to fill the GPU when few tokens attend to long contexts (decode) and a
 * single partition when the tokens alone fill it (large batches, prefill). Derived only from the
 * step's shape bucket, so a CUDA graph captured for a bucket fits every step in it.
 *
 * @param contextBucket the longest context this plan covers: at least 64, rounded up to a quarter of
 *     its octave (1025 -> 1280), so partitions stay balanced and there are few graph shapes
 */
record AttentionPlan(int parts, int partSize, int contextBucket) {
    /** Keys per partition are a multiple of this (the kernels' chunk). */
    static final int GRANULE = 64;
    /** Thread blocks per multiprocessor worth aiming for. */
    private static final int BLOCKS_PER_SM = 4;

    static AttentionPlan of(int tokens, int maxContext, int kvHeads, int multiprocessors) {
        int bucket = contextBucket(maxContext);
        long blocksPerPart = (long) tokens * kvHeads;
        int wanted = (int) Math.max(1, (BLOCKS_PER_SM * (long) multiprocessors + blocksPerPart - 1) / blocksPerPart);
        int partSize = roundUp(ceilDiv(bucket, wanted), GRANULE);
        return new AttentionPlan(ceilDiv(bucket, partSize), partSize, bucket);
    }

    static int contextBucket(int maxContext) {
        if (maxContext <= GRANULE) {
            return GRANULE;
        }
        int step = Math.max(GRANULE, Integer.highestOneBit(maxContext - 1) / 4);
        return roundUp(maxContext, step);
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
