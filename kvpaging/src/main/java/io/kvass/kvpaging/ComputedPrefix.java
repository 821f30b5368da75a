package io.kvass.kvpaging;

import java.util.List;
import java.util.Objects;

/**
 * The answer of {@link KvCacheManager#findCachedPrefix}: the leading full blocks of a prompt whose
 * K/V is already in the cache, to be handed to
 * {@link KvCacheManager#allocateSlots(RequestKey, ComputedPrefix, int)}.
 *
 * <p>NOTE: a prefix is valid only until the next allocation (which may evict its blocks); look it
 * up and admit the request back to back. The manager checks and throws on a stale prefix.
 *
 * @param scope         the scope it was looked up under; admission checks it matches the request
 * @param blocks        hit blocks in order, block 0 first
 * @param numTokens     tokens already computed: {@code blocks.size() * blockSize}
 * @param queriedTokens prompt tokens that were looked up (for {@link PrefixCacheStats})
 */
public record ComputedPrefix(CacheScope scope, List<CachedBlock> blocks, int numTokens, int queriedTokens) {
    public ComputedPrefix {
        Objects.requireNonNull(scope, "scope");
        blocks = List.copyOf(blocks);
        if (numTokens < 0 || queriedTokens < numTokens) {
            throw new IllegalArgumentException("numTokens=" + numTokens + " queriedTokens=" + queriedTokens);
        }
    }

    /** No cached prefix: the whole prompt is computed (also when a request opts out of caching). */
    public static ComputedPrefix none(CacheScope scope) {
        return new ComputedPrefix(scope, List.of(), 0, 0);
    }
}
