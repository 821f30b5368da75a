package io.kvass.kvpaging;

import java.util.Arrays;
import java.util.Objects;

/**
 * One request's blocks in token order (token t lives in block {@code get(t / blockSize)}), the hashes
 * of its leading full blocks that later blocks chain from, and the scope they are cached under.
 *
 * <p>NOTE: {@code hash(i)} is the hash of block i's content; {@code numHashed() <= size()}, and blocks
 * below {@code numHashed()} are never written again. All of it is one object with the counts as plain
 * fields because the scheduler asks about every running request every step: a table, a hash list and
 * a record holding them were three dependent cache misses per request per step.
 */
final class RequestBlocks implements KvCacheManager.Handle {
    private static final int[] NONE = new int[0];

    private final CacheScope scope;
    private int[] ids;
    private int size;
    // NOTE: hash i is {@code hashes[2i], hashes[2i + 1]} (hi, lo), not a BlockHash[]: reading the parent of the
    // next block to hash is then no extra cache miss, and storing a hash is no reference store (a G1 fence).
    private long[] hashes;
    private int numHashed;
    // NOTE: only a fork shares blocks that will still be written (a prefix hit shares full blocks, which
    // are never written again), so entries from here on are this request's own and need no copy-on-write
    // check: a decode step reads neither the table nor the reference counts.
    private int forkShared;
    private boolean freed;

    RequestBlocks(CacheScope scope) {
        this(scope, new int[8], 0, new long[2 * 8], 0);
    }

    private RequestBlocks(CacheScope scope, int[] ids, int size, long[] hashes, int numHashed) {
        this.scope = scope;
        this.ids = ids;
        this.size = size;
        this.hashes = hashes;
        this.numHashed = numHashed;
    }

    CacheScope scope() {
        return scope;
    }

    int size() {
        return size;
    }

    int get(int index) {
        return ids[Objects.checkIndex(index, size)];
    }

    void set(int index, int blockId) {
        ids[Objects.checkIndex(index, size)] = blockId;
    }

    void add(int blockId) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, 2 * size);
        }
        ids[size++] = blockId;
    }

    int[] toArray() {
        return Arrays.copyOf(ids, size);
    }

    /** Entries {@code [from, size)}; the shared empty array when there are none (every decode step but one in blockSize). */
    int[] toArray(int from) {
        return from == size ? NONE : Arrays.copyOfRange(ids, from, size);
    }

    int numHashed() {
        return numHashed;
    }

    BlockHash hash(int index) {
        int i = 2 * Objects.checkIndex(index, numHashed);
        return new BlockHash(hashes[i], hashes[i + 1]);
    }

    /** The hash of block {@code numHashed()}, which has just been filled. */
    void addHash(BlockHash hash) {
        if (2 * numHashed == hashes.length) {
            hashes = Arrays.copyOf(hashes, 2 * hashes.length);
        }
        hashes[2 * numHashed] = hash.hi();
        hashes[2 * numHashed + 1] = hash.lo();
        numHashed++;
    }

    /** Entries from here on need no copy-on-write check (see the field). */
    int forkShared() {
        return forkShared;
    }

    /** A copy for a fork's child; from now on both share every block they hold. */
    RequestBlocks fork() {
        forkShared = size;
        RequestBlocks child = new RequestBlocks(scope, ids.clone(), size, hashes.clone(), numHashed);
        child.forkShared = size;
        return child;
    }

    boolean isFreed() {
        return freed;
    }

    void markFreed() {
        freed = true;
    }
}
