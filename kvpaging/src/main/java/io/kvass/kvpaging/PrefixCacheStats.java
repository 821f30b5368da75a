package io.kvass.kvpaging;

/**
 * Monotonic prefix-cache counters, counted once per admitted request (not per lookup, so a request
 * that waits several steps for memory is not counted several times). Queries and hits are in
 * tokens, like vLLM's {@code vllm:prefix_cache_queries} and {@code vllm:prefix_cache_hits}.
 */
public record PrefixCacheStats(long requests, long queries, long hits) {

    /** Hit rate in tokens, 0 when nothing was queried. */
    public double hitRate() {
        return queries == 0 ? 0.0 : (double) hits / queries;
    }
}
