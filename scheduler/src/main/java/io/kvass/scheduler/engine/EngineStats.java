package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;

/** A replica's load and cache state, for the router, /admin and /metrics. */
public record EngineStats(int numRunning, int numWaiting, int numKvBlocks, int numFreeKvBlocks, double kvUsage,
                          long prefixCacheQueries, long prefixCacheHits, long numPreemptions) implements CrossNode {
}
