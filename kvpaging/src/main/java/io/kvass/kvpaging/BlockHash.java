package io.kvass.kvpaging;

/**
 * The 128-bit identity of a full block's content: SHA-256 (truncated) of the parent block's hash,
 * the block's token ids and its {@link CacheScope}. Chaining through the parent makes the hash
 * stand for the whole prefix up to and including this block. See {@link BlockHasher}.
 */
public record BlockHash(long hi, long lo) {
    /**
     * The parent of a sequence's first block.
     *
     * <p>NOTE: never produced by {@link BlockHasher} except with probability 2^-128.
     */
    public static final BlockHash ROOT = new BlockHash(0L, 0L);

    @Override
    public String toString() {
        return "BlockHash[%016x%016x]".formatted(hi, lo);
    }
}
