package io.kvass.kvpaging;

import java.util.Objects;

/**
 * A prompt's chained block hashes, computed exactly as the prefix cache computes them ({@link BlockHasher}: parent
 * hash, adapter id, tenant salt, token ids), without a block pool: the gateway hashes a prompt once and compares
 * the hashes with what each replica reports it holds ({@link PrefixCacheUpdate}).
 *
 * <p>The result is a pair array (hash i is {@code (a[2i], a[2i + 1])}), as in {@link PrefixCacheUpdate}.
 */
public final class PromptBlockHashes {
    private PromptBlockHashes() {
    }

    /**
     * How many leading full blocks of a {@code promptLength}-token prompt a replica looks up in its prefix cache
     * ({@link KvCacheManager#findCachedPrefix}): never the whole prompt, as its last token must be computed to
     * sample the next one.
     */
    public static int lookupBlocks(int promptLength, int blockSize) {
        if (blockSize <= 0) {
            throw new IllegalArgumentException("blockSize=" + blockSize);
        }
        return Math.max(0, promptLength - 1) / blockSize;
    }

    /** The hashes of the blocks a replica would look up for this prompt (see {@link #lookupBlocks}). */
    public static long[] forLookup(BlockHasher hasher, int[] prompt, int blockSize, CacheScope scope) {
        return of(hasher, prompt, lookupBlocks(prompt.length, blockSize) * blockSize, blockSize, scope);
    }

    /**
     * The hashes of the full blocks among {@code tokens[0, numTokens)}, block 0 first: what the prefix cache
     * stores once those tokens are computed.
     *
     * @param hasher not thread-safe: one per caller (a gateway actor keeps one)
     */
    public static long[] of(BlockHasher hasher, int[] tokens, int numTokens, int blockSize, CacheScope scope) {
        Objects.requireNonNull(scope, "scope");
        Objects.checkFromToIndex(0, numTokens, tokens.length);
        if (blockSize <= 0) {
            throw new IllegalArgumentException("blockSize=" + blockSize);
        }
        int numBlocks = numTokens / blockSize;
        long[] hashes = new long[2 * numBlocks];
        BlockHash parent = BlockHash.ROOT;
        for (int i = 0; i < numBlocks; i++) {
            parent = hasher.hash(parent, scope, tokens, i * blockSize, blockSize);
            hashes[2 * i] = parent.hi();
            hashes[2 * i + 1] = parent.lo();
        }
        return hashes;
    }
}
