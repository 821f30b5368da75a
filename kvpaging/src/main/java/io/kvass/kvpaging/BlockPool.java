package io.kvass.kvpaging;

import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Blocks {@code 0..numBlocks-1} with exact reference counts, a free queue in eviction order, and
 * the prefix cache (block hash -> block id), as vLLM v1's {@code BlockPool}.
 *
 * <p>A free block (ref 0) may still hold a cached prefix: it stays findable until it is taken
 * for new content, which evicts its hash. Taking a block always takes the head of the free queue;
 * a released block that is cached goes to the tail, so cached blocks are evicted least recently
 * used first.
 *
 * <p>NOTE: a released block that is <em>not</em> cached goes to the head instead (vLLM sends every
 * released block to the tail). Its content can never be found again, so reusing it first costs
 * nothing, while taking a cached block would throw a reusable prefix away.
 */
public final class BlockPool {
    private final int[] refCounts;
    private final PrefixCacheIndex cached;
    private final FreeBlockQueue freeQueue;

    public BlockPool(int numBlocks) {
        if (numBlocks <= 0) {
            throw new IllegalArgumentException("numBlocks=" + numBlocks);
        }
        refCounts = new int[numBlocks];
        cached = new PrefixCacheIndex(numBlocks);
        freeQueue = new FreeBlockQueue(numBlocks);
    }

    public int numBlocks() {
        return refCounts.length;
    }

    public int numFree() {
        return freeQueue.size();
    }

    /** Fraction of blocks in use (referenced), 0..1; cached free blocks count as free. */
    public double usage() {
        return 1.0 - (double) numFree() / numBlocks();
    }

    public int refCount(int blockId) {
        return refCounts[checkId(blockId)];
    }

    /** The hash the block is cached under, if it is in the prefix cache. */
    public Optional<BlockHash> hashOf(int blockId) {
        return Optional.ofNullable(cached.hashOf(checkId(blockId)));
    }

    /** The block cached under {@code hash}, whether in use or free. */
    public OptionalInt cachedBlock(BlockHash hash) {
        int block = cached.blockOf(hash);
        return block < 0 ? OptionalInt.empty() : OptionalInt.of(block);
    }

    public int numCachedBlocks() {
        return cached.size();
    }

    /**
     * Takes the head of the free queue with ref 1, evicting the prefix it cached.
     *
     * @throws IllegalStateException when no block is free; callers check {@link #numFree()} first
     */
    public int allocate() {
        int block = freeQueue.popFront();
        cached.remove(block);
        refCounts[block] = 1;
        return block;
    }

    /** One more reference; a free block (a prefix hit) leaves the free queue, keeping its hash. */
    public void touch(int blockId) {
        if (refCounts[checkId(blockId)]++ == 0) {
            freeQueue.remove(blockId);
        }
    }

    /** One reference fewer; at zero the block becomes free (see the class comment for where). */
    public void release(int blockId) {
        if (refCounts[checkId(blockId)] <= 0) {
            throw new IllegalStateException("block " + blockId + " released more often than referenced");
        }
        if (--refCounts[blockId] == 0) {
            if (cached.isCached(blockId)) {
                freeQueue.pushBack(blockId);
            } else {
                freeQueue.pushFront(blockId);
            }
        }
    }

    /**
     * Puts a full, computed block into the prefix cache under {@code hash}.
     *
     * @return whether the block is now cached under {@code hash}; false when another block already
     *     holds that content (the first one stays the cached copy, this one stays uncached)
     * @throws IllegalStateException when the block is free or already cached under another hash
     */
    public boolean cache(int blockId, BlockHash hash) {
        Objects.requireNonNull(hash, "hash");
        if (refCounts[checkId(blockId)] == 0) {
            throw new IllegalStateException("block " + blockId + " is free; only blocks in use are cached");
        }
        if (cached.isCached(blockId)) {
            BlockHash current = cached.hashOf(blockId);
            if (!current.equals(hash)) {
                throw new IllegalStateException("block " + blockId + " is cached as " + current + ", not " + hash);
            }
            return true;
        }
        return cached.add(blockId, hash);
    }

    /**
     * Forgets every cached prefix (e.g. after an adapter was replaced under the same id). Like vLLM,
     * only when no block is in use, so that nothing running loses the hashes of its own blocks.
     *
     * @return whether the cache was cleared
     */
    public boolean resetPrefixCache() {
        if (numFree() != numBlocks()) {
            return false;
        }
        cached.clear();
        return true;
    }

    /**
     * What the prefix cache stored and evicted since the previous call, for the gateways' routing; see
     * {@link KvCacheManager#drainPrefixCacheUpdate(boolean)}.
     */
    public PrefixCacheUpdate drainPrefixCacheUpdate(boolean snapshot) {
        return cached.drainUpdate(snapshot);
    }

    /** Free blocks head (next taken) to tail. */
    int[] freeQueueOrder() {
        return freeQueue.toArray();
    }

    /** Throws when the pool's own bookkeeping is inconsistent; for tests. */
    void checkInvariants() {
        int[] free = freeQueue.toArray();
        boolean[] seen = new boolean[numBlocks()];
        for (int block : free) {
            check(!seen[block], "block %d twice in the free queue", block);
            seen[block] = true;
        }
        for (int b = 0; b < numBlocks(); b++) {
            check(refCounts[b] >= 0, "block %d has ref %d", b, refCounts[b]);
            check((refCounts[b] == 0) == seen[b], "block %d: ref %d but free=%b", b, refCounts[b], seen[b]);
            check(seen[b] == freeQueue.contains(b), "block %d: queue membership disagrees with its links", b);
        }
        int hashed = 0;
        for (int b = 0; b < numBlocks(); b++) {
            BlockHash hash = cached.hashOf(b);
            if (hash != null) {
                hashed++;
                check(cached.blockOf(hash) == b, "block %d's hash maps to block %d", b, cached.blockOf(hash));
            }
        }
        check(hashed == cached.size(), "cache index has %d entries, %d blocks hashed", cached.size(), hashed);
    }

    static void check(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new IllegalStateException("invariant broken: " + format.formatted(args));
        }
    }

    private int checkId(int blockId) {
        return Objects.checkIndex(blockId, refCounts.length);
    }
}
