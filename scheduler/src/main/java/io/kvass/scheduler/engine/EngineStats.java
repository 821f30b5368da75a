package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;

/**
 * A replica's load and cache state, for the router, /admin and /metrics.
 *
 * @param iterationTokens tokens per engine step so far (vLLM's {@code vllm:iteration_tokens_total})
 * @param blockSize       tokens per KV block (for {@code vllm:cache_config_info})
 * @param prefixCaching   whether the replica caches prefixes
 */
public record EngineStats(int numRunning, int numWaiting, int numKvBlocks, int numFreeKvBlocks, double kvUsage,
                          long prefixCacheQueries, long prefixCacheHits, long numPreemptions,
                          IterationTokens iterationTokens, int blockSize, boolean prefixCaching) implements CrossNode {

    /** Without step history or block size. */
    public EngineStats(int numRunning, int numWaiting, int numKvBlocks, int numFreeKvBlocks, double kvUsage,
                       long prefixCacheQueries, long prefixCacheHits, long numPreemptions) {
        this(numRunning, numWaiting, numKvBlocks, numFreeKvBlocks, kvUsage, prefixCacheQueries, prefixCacheHits,
                numPreemptions, IterationTokens.NONE, 0, false);
    }
}
