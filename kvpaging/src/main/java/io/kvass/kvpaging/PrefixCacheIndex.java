package io.kvass.kvpaging;

import java.util.Arrays;

/**
 * The prefix cache's index, both ways: the block holding each cached hash, and the hash each cached
 * block holds. Open addressing with linear probing over one flat array, so a lookup, an insertion or
 * an eviction touches a cache line or two and allocates nothing.
 *
 * <p>Why not a {@code HashMap<BlockHash, Integer>}: every entry is a node, a key and a boxed id, so each
 * probe is three dependent cache misses. With a thousand running sequences a step fills (and evicts)
 * some sixty blocks, and those misses were a large part of the step.
 *
 * <p>NOTE: slot s is {@code slots[3s] = hi, slots[3s + 1] = lo, slots[3s + 2] = blockId + 1}, 0 when empty.
 * Removal shifts the rest of the probe run back instead of leaving a tombstone, so a lookup ends at the
 * first empty slot. The table doubles when half full; it never holds more entries than there are blocks.
 *
 * <p>NOTE: removals are queued and applied together just before the next other call. A scheduler step takes some
 * sixty blocks from the free queue, each evicting its hash: one at a time, each removal's cache misses (the block's
 * slot, then its probe run, in a table of megabytes) came alone between the step's other work, while in one short
 * loop those of successive removals overlap. Applied in the order queued, with nothing in between, they leave the
 * table as removing each at once would have.
 *
 * <p>Every hash stored or evicted is also noted in a {@link PrefixCacheEvents}, so the replica can tell the gateways
 * what changed ({@link #drainUpdate(boolean)}).
 */
final class PrefixCacheIndex {
    private static final int STRIDE = 3;
    private static final int MIN_CAPACITY = 16;
    private static final int NONE = -1;

    private final int[] slotOfBlock; // NONE: the block is not cached
    private long[] slots;
    private int mask; // capacity - 1, capacity a power of two
    private int size; // once the queued removals are applied
    private int[] queuedRemovals = new int[64];
    private int numQueuedRemovals;
    private final PrefixCacheEvents events;

    PrefixCacheIndex(int numBlocks) {
        slotOfBlock = new int[numBlocks];
        events = new PrefixCacheEvents(numBlocks);
        clear();
    }

    int size() {
        applyQueuedRemovals();
        return size;
    }

    void clear() {
        numQueuedRemovals = 0; // NOTE: nothing is left to remove them from
        Arrays.fill(slotOfBlock, NONE);
        slots = new long[STRIDE * MIN_CAPACITY];
        mask = MIN_CAPACITY - 1;
        size = 0;
        events.invalidate();
    }

    /** The block cached under {@code hash}, or -1. */
    int blockOf(BlockHash hash) {
        return blockOf(hash.hi(), hash.lo());
    }

    boolean contains(long hi, long lo) {
        return blockOf(hi, lo) >= 0;
    }

    private int blockOf(long hi, long lo) {
        applyQueuedRemovals();
        for (int s = home(hi, lo); ; s = (s + 1) & mask) {
            long entry = slots[STRIDE * s + 2];
            if (entry == 0) {
                return -1;
            }
            if (slots[STRIDE * s] == hi && slots[STRIDE * s + 1] == lo) {
                return (int) entry - 1;
            }
        }
    }

    /**
     * What changed since the last call ({@link PrefixCacheEvents}), or every cached hash when
     * {@code snapshot} is asked or the change was not kept (overflow, a cleared cache, the first call).
     */
    PrefixCacheUpdate drainUpdate(boolean snapshot) {
        applyQueuedRemovals();
        if (snapshot || events.needsSnapshot()) {
            events.clear();
            return snapshot();
        }
        return events.drainDelta(this);
    }

    private PrefixCacheUpdate.Snapshot snapshot() {
        long[] held = new long[2 * size];
        int n = 0;
        for (int i = 0; i < slots.length; i += STRIDE) {
            if (slots[i + 2] != 0) {
                held[n++] = slots[i];
                held[n++] = slots[i + 1];
            }
        }
        return new PrefixCacheUpdate.Snapshot(held);
    }

    boolean isCached(int block) {
        applyQueuedRemovals();
        return slotOfBlock[block] != NONE;
    }

    /** The hash the block is cached under, or null. */
    BlockHash hashOf(int block) {
        applyQueuedRemovals();
        int s = slotOfBlock[block];
        return s == NONE ? null : new BlockHash(slots[STRIDE * s], slots[STRIDE * s + 1]);
    }

    /**
     * Caches an uncached block under {@code hash}, unless another block already holds that hash.
     *
     * @return whether the block is now cached
     */
    boolean add(int block, BlockHash hash) {
        applyQueuedRemovals();
        if (2 * (size + 1) > mask + 1) {
            grow();
        }
        int s = home(hash.hi(), hash.lo());
        for (; slots[STRIDE * s + 2] != 0; s = (s + 1) & mask) {
            if (slots[STRIDE * s] == hash.hi() && slots[STRIDE * s + 1] == hash.lo()) {
                return false;
            }
        }
        put(s, hash.hi(), hash.lo(), block);
        size++;
        events.record(hash.hi(), hash.lo());
        return true;
    }

    /** Forgets the block's hash, if it has one (the block is evicted from the cache); see the class note. */
    void remove(int block) {
        if (numQueuedRemovals == queuedRemovals.length) {
            queuedRemovals = Arrays.copyOf(queuedRemovals, 2 * numQueuedRemovals);
        }
        queuedRemovals[numQueuedRemovals++] = block;
    }

    private void applyQueuedRemovals() {
        for (int i = 0; i < numQueuedRemovals; i++) {
            removeNow(queuedRemovals[i]);
        }
        numQueuedRemovals = 0;
    }

    private void removeNow(int block) {
        int hole = slotOfBlock[block];
        if (hole == NONE) {
            return;
        }
        slotOfBlock[block] = NONE;
        size--;
        events.record(slots[STRIDE * hole], slots[STRIDE * hole + 1]);
        // NOTE: an entry later in the run moves into the hole when the hole lies between its home and
        // its slot; otherwise a lookup from its home would stop at the hole and miss it.
        for (int s = (hole + 1) & mask; slots[STRIDE * s + 2] != 0; s = (s + 1) & mask) {
            long hi = slots[STRIDE * s];
            long lo = slots[STRIDE * s + 1];
            int home = home(hi, lo);
            if (((s - home) & mask) >= ((s - hole) & mask)) {
                put(hole, hi, lo, (int) slots[STRIDE * s + 2] - 1);
                hole = s;
            }
        }
        Arrays.fill(slots, STRIDE * hole, STRIDE * hole + STRIDE, 0L);
    }

    private void put(int s, long hi, long lo, int block) {
        slots[STRIDE * s] = hi;
        slots[STRIDE * s + 1] = lo;
        slots[STRIDE * s + 2] = block + 1L;
        slotOfBlock[block] = s;
    }

    private void grow() {
        long[] old = slots;
        slots = new long[2 * old.length];
        mask = 2 * (mask + 1) - 1;
        for (int i = 0; i < old.length; i += STRIDE) {
            if (old[i + 2] != 0) {
                int s = home(old[i], old[i + 1]);
                while (slots[STRIDE * s + 2] != 0) {
                    s = (s + 1) & mask;
                }
                put(s, old[i], old[i + 1], (int) old[i + 2] - 1);
            }
        }
    }

    /** Fibonacci hashing: block hashes are SHA-256 bits already, but tests and callers may pass any values. */
    private int home(long hi, long lo) {
        return (int) (((hi ^ Long.rotateLeft(lo, 32)) * 0x9E3779B97F4A7C15L) >>> 32) & mask;
    }
}
