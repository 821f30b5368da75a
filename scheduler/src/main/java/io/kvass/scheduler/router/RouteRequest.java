package io.kvass.scheduler.router;

import io.kvass.kvpaging.BlockHasher;
import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.PromptBlockHashes;
import java.util.Objects;

/**
 * A request as the router sees it: who asks (tenant, priority), what it needs (model, adapter, prompt length) and
 * the prompt's chained block hashes, computed once at the gateway ({@link #of}).
 *
 * @param tenant       fairness is per tenant within a priority
 * @param priority     lower is served first (vLLM's {@code priority})
 * @param model        the served model's name; only replicas serving it are eligible
 * @param adapterId    the LoRA adapter, {@link CacheScope#BASE_MODEL} for none
 * @param promptTokens the prompt's length in tokens
 * @param blockSize    the block size the hashes were computed with
 * @param blockHashes  pair array ({@link io.kvass.kvpaging.PrefixCacheUpdate}) of the prompt's leading full blocks
 *                     a replica would look up ({@link PromptBlockHashes#forLookup}), block 0 first
 */
public record RouteRequest(String requestId, String tenant, int priority, String model, long adapterId,
                           int promptTokens, int blockSize, long[] blockHashes) {

    public RouteRequest {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(blockHashes, "blockHashes");
        if (promptTokens < 1 || blockSize < 1 || (blockHashes.length & 1) != 0
                || blockHashes.length / 2 > PromptBlockHashes.lookupBlocks(promptTokens, blockSize)) {
            throw new IllegalArgumentException("request " + requestId + ": " + promptTokens + " prompt tokens, block size "
                    + blockSize + ", " + blockHashes.length + " hash words");
        }
    }

    /**
     * Hashes the prompt exactly as the replicas' prefix caches do (adapter id and tenant salt included).
     *
     * @param hasher not thread-safe: one per gateway actor
     */
    public static RouteRequest of(String requestId, String tenant, int priority, String model, CacheScope scope,
                                  int[] prompt, int blockSize, BlockHasher hasher) {
        return new RouteRequest(requestId, tenant, priority, model, scope.adapterId(), prompt.length, blockSize,
                PromptBlockHashes.forLookup(hasher, prompt, blockSize, scope));
    }

    /** Blocks a replica must allocate for the prompt when its first {@code cachedBlocks} blocks are cached. */
    int blocksNeeded(int cachedBlocks, int replicaBlockSize) {
        if (replicaBlockSize != blockSize) {
            return Math.ceilDiv(promptTokens, replicaBlockSize);
        }
        return Math.ceilDiv(promptTokens, blockSize) - cachedBlocks;
    }
}
