package io.kvass.kvpaging;

import static io.kvass.kvpaging.BlockPool.check;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Which blocks each request owns, as vLLM v1's {@code KVCacheManager}: prefix-cache lookup,
 * all-or-nothing slot allocation, registration of computed full blocks, copy-on-write forks and
 * freeing. It hands out block ids only; the backend owns the memory behind them.
 *
 * <p>The scheduler's use, per step:
 * <pre>{@code
 * // new request
 * ComputedPrefix prefix = kv.findCachedPrefix(key, promptTokens);
 * Allocation a = kv.allocateSlots(key, prefix, promptTokens.length - prefix.numTokens());
 * // running request
 * Allocation a = kv.allocateSlots(requestId, numComputedTokens, numNewTokens);
 * // NoSpace -> preempt someone (kv.free) and retry; Granted -> run its copies, then the step
 * kv.cacheFullBlocks(requestId, allTokenIds, numComputedTokensAfterTheStep);
 * kv.free(requestId); // finished, aborted or preempted
 * }</pre>
 *
 * <p>NOTE: not thread-safe; one owner (the replica's engine) calls it.
 */
public final class KvCacheManager {
    private final KvCacheConfig config;
    private final BlockPool pool;
    private final BlockHasher hasher = new BlockHasher();
    private final Map<String, RequestBlocks> sequences = new HashMap<>();
    private long statRequests;
    private long statQueries;
    private long statHits;

    /**
     * An opaque reference to one request's blocks, so a scheduler touching every running request
     * each step does not look each one up by id. Valid until the request is freed.
     */
    public sealed interface Handle permits RequestBlocks {
    }

    public KvCacheManager(KvCacheConfig config) {
        this.config = Objects.requireNonNull(config, "config");
        this.pool = new BlockPool(config.numBlocks());
    }

    public int blockSize() {
        return config.blockSize();
    }

    public int numTotalBlocks() {
        return pool.numBlocks();
    }

    public int numFreeBlocks() {
        return pool.numFree();
    }

    /** Fraction of blocks in use, 0..1 (vLLM's {@code kv_cache_usage_perc}). */
    public double usage() {
        return pool.usage();
    }

    public PrefixCacheStats prefixCacheStats() {
        return new PrefixCacheStats(statRequests, statQueries, statHits);
    }

    public boolean hasRequest(String requestId) {
        return sequences.containsKey(requestId);
    }

    /** A copy of the request's block ids in token order. */
    /** The handle of a request that holds blocks. */
    public Handle handle(String requestId) {
        return sequence(requestId);
    }

    public int[] blockTable(Handle handle, int from) {
        return live(handle).toArray(from);
    }

    public int[] blockTable(String requestId) {
        return sequence(requestId).toArray();
    }

    /** Entries {@code [from, numBlocks)} of the table: the delta a {@code Granted} allocation changed. */
    public int[] blockTable(String requestId, int from) {
        return sequence(requestId).toArray(from);
    }

    public int numBlocks(String requestId) {
        return sequence(requestId).size();
    }

    /**
     * The leading full blocks of {@code tokens} that are already cached under the request's scope.
     * Changes nothing (statistics are counted at admission).
     *
     * <p>NOTE: never the whole prompt: at most {@code tokens.length - 1} tokens rounded down to
     * whole blocks, because the last prompt token must be computed to get the logits to sample from.
     */
    public ComputedPrefix findCachedPrefix(RequestKey key, int[] tokens) {
        if (!config.enablePrefixCaching()) {
            return ComputedPrefix.none(key.scope());
        }
        int blockSize = blockSize();
        int maxBlocks = PromptBlockHashes.lookupBlocks(tokens.length, blockSize);
        List<CachedBlock> hits = new ArrayList<>();
        BlockHash parent = BlockHash.ROOT;
        for (int i = 0; i < maxBlocks; i++) {
            BlockHash hash = hasher.hash(parent, key.scope(), tokens, i * blockSize, blockSize);
            OptionalInt block = pool.cachedBlock(hash);
            if (block.isEmpty()) {
                break;
            }
            hits.add(new CachedBlock(block.getAsInt(), hash));
            parent = hash;
        }
        return new ComputedPrefix(key.scope(), hits, hits.size() * blockSize, tokens.length);
    }

    /**
     * Admits a new request: takes the cached prefix blocks and enough fresh blocks to hold
     * {@code prefix.numTokens() + numNewTokens} tokens, or nothing at all.
     *
     * @param prefix as just returned by {@link #findCachedPrefix} for this key, or
     *     {@link ComputedPrefix#none}
     * @return {@code Granted(0, [])}, or {@code NoSpace} with the manager unchanged
     */
    public Allocation allocateSlots(RequestKey key, ComputedPrefix prefix, int numNewTokens) {
        String requestId = key.requestId();
        require(!sequences.containsKey(requestId), "request %s already has blocks", requestId);
        require(prefix.scope().equals(key.scope()), "prefix was found under %s, request is %s", prefix.scope(), key.scope());
        require(prefix.numTokens() == prefix.blocks().size() * blockSize(), "prefix is not whole blocks: %s", prefix);
        require(numNewTokens > 0, "numNewTokens=%d", numNewTokens);
        int revived = 0;
        for (CachedBlock hit : prefix.blocks()) {
            if (!pool.hashOf(hit.blockId()).equals(Optional.of(hit.hash()))) {
                throw new IllegalStateException("stale prefix: block " + hit.blockId() + " was evicted after the lookup");
            }
            if (pool.refCount(hit.blockId()) == 0) {
                revived++; // NOTE: a free cached block leaves the free queue, so it counts against numFree
            }
        }
        int fresh = blocksFor(prefix.numTokens() + numNewTokens) - prefix.blocks().size();
        if (revived + fresh > pool.numFree()) {
            return new Allocation.NoSpace(revived + fresh, pool.numFree());
        }
        RequestBlocks seq = new RequestBlocks(key.scope());
        for (CachedBlock hit : prefix.blocks()) {
            pool.touch(hit.blockId()); // before allocating, so a hit cannot be taken as a fresh block
            seq.add(hit.blockId());
            seq.addHash(hit.hash());
        }
        for (int i = 0; i < fresh; i++) {
            seq.add(pool.allocate());
        }
        sequences.put(requestId, seq);
        if (config.enablePrefixCaching()) {
            statRequests++;
            statQueries += prefix.queriedTokens();
            statHits += prefix.numTokens();
        }
        return new Allocation.Granted(0, List.of());
    }

    /**
     * Grows a running request so it can hold {@code numComputedTokens + numNewTokens} tokens, and
     * makes every block the step writes into its own: a block shared with a fork is replaced by a
     * fresh one, with a {@link BlockCopy} when it already holds computed tokens. All or nothing.
     *
     * <p>NOTE: when the request's blocks already hold all those tokens and it was never forked, this
     * changes nothing and grants {@code Granted(numBlocks, [])}; a caller that knows so may skip the call.
     *
     * @return {@code Granted} (changed table entries + copies to run first), or {@code NoSpace}
     *     with the manager unchanged
     */
    public Allocation allocateSlots(String requestId, int numComputedTokens, int numNewTokens) {
        return allocateSlots(handle(requestId), numComputedTokens, numNewTokens);
    }

    /** As {@link #allocateSlots(String, int, int)}, without the lookup. */
    public Allocation allocateSlots(Handle handle, int numComputedTokens, int numNewTokens) {
        RequestBlocks table = live(handle);
        int blockSize = blockSize();
        require(numNewTokens > 0, "numNewTokens=%d", numNewTokens);
        require(numComputedTokens >= table.numHashed() * blockSize && numComputedTokens <= table.size() * blockSize,
                "numComputedTokens=%d outside [%d, %d]: it would rewrite cached blocks or skip unallocated ones",
                numComputedTokens, table.numHashed() * blockSize, table.size() * blockSize);
        int blocksNeeded = blocksFor(numComputedTokens + numNewTokens);
        int oldSize = table.size();
        int fresh = Math.max(0, blocksNeeded - oldSize);
        int firstWritten = numComputedTokens / blockSize;
        int endWritten = Math.min(oldSize, blocksNeeded);
        int endShared = Math.min(endWritten, table.forkShared());
        int shared = 0;
        for (int i = firstWritten; i < endShared; i++) {
            if (pool.refCount(table.get(i)) > 1) {
                shared++;
            }
        }
        if (fresh + shared > pool.numFree()) {
            return new Allocation.NoSpace(fresh + shared, pool.numFree());
        }
        if (fresh + shared == 0) {
            return Allocation.Granted.unchanged(oldSize);
        }
        List<BlockCopy> copies = List.of(); // NOTE: most steps copy nothing; a list only when one does
        int firstChanged = oldSize;
        for (int i = firstWritten; i < endShared; i++) {
            int src = table.get(i);
            if (pool.refCount(src) > 1) {
                int dst = pool.allocate();
                if (i * blockSize < numComputedTokens) {
                    if (copies.isEmpty()) {
                        copies = new ArrayList<>();
                    }
                    copies.add(new BlockCopy(src, dst)); // only this block's leading slots are valid
                }
                pool.release(src); // NOTE: stays referenced by the other sharer(s), so it is not reused
                table.set(i, dst);
                firstChanged = Math.min(firstChanged, i);
            }
        }
        for (int i = 0; i < fresh; i++) {
            table.add(pool.allocate());
        }
        return new Allocation.Granted(firstChanged, copies);
    }

    /**
     * Registers the request's newly filled full blocks in the prefix cache, once the scheduler knows
     * their tokens were computed. O(new full blocks): hashes already computed are kept.
     *
     * @param tokenIds          the request's tokens (prompt, then output); only the first
     *                          {@code numComputedTokens} are read
     * @param numComputedTokens tokens whose K/V is now in the request's blocks
     */
    public void cacheFullBlocks(String requestId, int[] tokenIds, int numComputedTokens) {
        cacheFullBlocks(handle(requestId), tokenIds, numComputedTokens);
    }

    /** As {@link #cacheFullBlocks(String, int[], int)}, without the lookup. */
    public void cacheFullBlocks(Handle handle, int[] tokenIds, int numComputedTokens) {
        RequestBlocks seq = live(handle);
        if (!config.enablePrefixCaching()) {
            return;
        }
        int first = seq.numHashed();
        hashFullBlocks(seq, tokenIds, numComputedTokens, first == 0 ? BlockHash.ROOT : seq.hash(first - 1));
        cacheHashed(seq, first);
    }

    /**
     * {@link #cacheFullBlocks(Handle, int[], int)} for every request of the batch, in its order, in three passes
     * over all of them: each request's state (the parent hash of its first block to hash), then the hashes, then
     * the prefix cache. A scheduler step with a thousand running sequences fills blocks of some sixty; one request
     * at a time, the cache misses of each (its table, its last hash, the pool's reference count and index slot)
     * waited behind the previous request's SHA-256, while in a pass of short iterations the CPU overlaps them.
     */
    public void cacheFullBlocks(FullBlockBatch batch) {
        for (int b = 0; b < batch.size; b++) {
            RequestBlocks seq = live(batch.requests[b]);
            int first = seq.numHashed();
            batch.firstToHash[b] = first;
            BlockHash parent = first == 0 ? BlockHash.ROOT : seq.hash(first - 1);
            batch.parentHi[b] = parent.hi();
            batch.parentLo[b] = parent.lo();
        }
        if (!config.enablePrefixCaching()) {
            return;
        }
        for (int b = 0; b < batch.size; b++) {
            if (batch.requests[b].numHashed() != batch.firstToHash[b]) {
                throw new IllegalArgumentException("a request is in the batch twice");
            }
            hashFullBlocks(batch.requests[b], batch.tokenIds[b], batch.numComputedTokens[b],
                    new BlockHash(batch.parentHi[b], batch.parentLo[b]));
        }
        for (int b = 0; b < batch.size; b++) {
            cacheHashed(batch.requests[b], batch.firstToHash[b]);
        }
    }

    /** Hashes the request's newly filled full blocks; {@code parent} is the hash of the block before the first. */
    private void hashFullBlocks(RequestBlocks seq, int[] tokenIds, int numComputedTokens, BlockHash parent) {
        int blockSize = blockSize();
        require(numComputedTokens <= tokenIds.length && numComputedTokens <= seq.size() * blockSize,
                "numComputedTokens=%d, but %d tokens and %d blocks", numComputedTokens, tokenIds.length, seq.size());
        int numFull = numComputedTokens / blockSize;
        for (int i = seq.numHashed(); i < numFull; i++) {
            parent = hasher.hash(parent, seq.scope(), tokenIds, i * blockSize, blockSize);
            seq.addHash(parent);
        }
    }

    /** Puts the request's blocks from {@code first} to its last hashed one into the prefix cache. */
    private void cacheHashed(RequestBlocks seq, int first) {
        for (int i = first; i < seq.numHashed(); i++) {
            pool.cache(seq.get(i), seq.hash(i));
        }
    }

    /**
     * Copy-on-write fork (n > 1 sampling, beam search): the child shares every block of the parent.
     * Whichever of them next writes into a shared block gets a private copy from
     * {@link #allocateSlots(String, int, int)}. Needs no free block, so it always succeeds.
     *
     * <p>NOTE: fork between steps, when the parent's blocks hold exactly its computed tokens.
     */
    public void fork(String parentId, String childId) {
        RequestBlocks parent = sequence(parentId);
        require(!sequences.containsKey(childId), "request %s already has blocks", childId);
        RequestBlocks child = parent.fork();
        for (int i = 0; i < child.size(); i++) {
            pool.touch(child.get(i));
        }
        sequences.put(childId, child);
    }

    /**
     * Drops the request's references; blocks nobody else holds become free, and cached ones stay
     * findable until evicted. Unknown ids are ignored, so finishing and aborting may race.
     *
     * @return whether the request had blocks
     */
    public boolean free(String requestId) {
        RequestBlocks seq = sequences.remove(requestId);
        if (seq == null) {
            return false;
        }
        seq.markFreed();
        // NOTE: last block first, as vLLM does: freed blocks queue up in this order, so a
        // sequence's tail is evicted before its head, which is the part other requests share.
        for (int i = seq.size() - 1; i >= 0; i--) {
            pool.release(seq.get(i));
        }
        return true;
    }

    /**
     * What the prefix cache stored and evicted since the previous call, so the replica's load report can tell the
     * gateways which prompts it holds (see {@link PrefixCacheUpdate}). A {@link PrefixCacheUpdate.Delta} normally;
     * a {@link PrefixCacheUpdate.Snapshot} of every cached hash when {@code snapshot} is asked (a gateway that
     * just started, or that missed an update), on the first call, after {@link #resetPrefixCache()}, and when more
     * hashes changed than the pool has blocks (the record is bounded by that, see {@link PrefixCacheEvents}).
     * Either way, the next call reports changes from now on.
     *
     * <p>NOTE: with prefix caching off nothing is ever cached: every update is empty.
     */
    public PrefixCacheUpdate drainPrefixCacheUpdate(boolean snapshot) {
        return pool.drainPrefixCacheUpdate(snapshot);
    }

    /** Forgets all cached prefixes; only when no request holds blocks (see {@link BlockPool#resetPrefixCache}). */
    public boolean resetPrefixCache() {
        return pool.resetPrefixCache();
    }

    BlockPool pool() {
        return pool;
    }

    /** Throws when reference counts, tables, free queue or prefix cache disagree; for tests. */
    void checkInvariants() {
        pool.checkInvariants();
        int[] refs = new int[pool.numBlocks()];
        sequences.forEach((id, seq) -> {
            check(seq.numHashed() <= seq.size(), "%s has %d hashes for %d blocks", id, seq.numHashed(), seq.size());
            Set<Integer> seen = new HashSet<>();
            for (int i = 0; i < seq.size(); i++) {
                int block = seq.get(i);
                refs[block]++;
                check(seen.add(block), "block %d twice in %s's table", block, id);
                if (i < seq.numHashed()) {
                    Optional<BlockHash> cached = pool.hashOf(block);
                    check(cached.isEmpty() || cached.get().equals(seq.hash(i)),
                            "%s block %d (#%d) cached as %s, request says %s", id, block, i, cached, seq.hash(i));
                }
            }
        });
        for (int b = 0; b < refs.length; b++) {
            check(pool.refCount(b) == refs[b], "block %d has ref %d but %d table entries", b, pool.refCount(b), refs[b]);
        }
    }

    private RequestBlocks sequence(String requestId) {
        RequestBlocks seq = sequences.get(requestId);
        if (seq == null) {
            throw new IllegalArgumentException("unknown request " + requestId);
        }
        return seq;
    }

    private static RequestBlocks live(Handle handle) {
        RequestBlocks seq = (RequestBlocks) handle;
        if (seq.isFreed()) {
            throw new IllegalArgumentException("handle of a freed request");
        }
        return seq;
    }

    private int blocksFor(int numTokens) {
        return Math.ceilDiv(numTokens, blockSize());
    }

    private static void require(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new IllegalArgumentException(format.formatted(args));
        }
    }

    /**
     * As {@link #require(boolean, String, Object...)} for three numbers, boxed only when it throws: the varargs
     * one boxes them on every call, and allocateSlots and cacheFullBlocks run for ~60 requests per step.
     */
    private static void require(boolean ok, String format, int a, int b, int c) {
        if (!ok) {
            throw new IllegalArgumentException(format.formatted(a, b, c));
        }
    }
}
