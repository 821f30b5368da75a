package io.kvass.kvpaging;

import java.util.Arrays;

/**
 * The hashes the prefix cache stored or evicted since the last drain, kept so a replica can tell the gateways
 * what changed ({@link PrefixCacheUpdate.Delta}) instead of sending the whole cache every time.
 *
 * <p>Only the hashes are recorded, not whether each was stored or evicted: when drained, each one is classified
 * by whether the cache holds it <em>now</em>. That nets out every sequence of events within the interval (stored
 * then evicted, evicted then stored again) exactly, at one index lookup per hash, and costs the scheduler's step
 * two array stores per event.
 *
 * <p>Bounded: past {@code capacity} hashes the record is dropped and the next drain is a full
 * {@link PrefixCacheUpdate.Snapshot}. The capacity is the pool's block count (at least {@value #MIN_CAPACITY}),
 * which bounds the cache's size, so a delta is never allowed to grow much larger than a snapshot would be. The
 * array grows on demand up to it.
 */
final class PrefixCacheEvents {
    static final int MIN_CAPACITY = 256;
    private final int capacity;
    private long[] touched = new long[2 * 64];
    private int size;
    private boolean overflowed = true; // NOTE: nobody has seen the cache yet: the first drain is a snapshot

    PrefixCacheEvents(int capacity) {
        this.capacity = Math.max(MIN_CAPACITY, capacity);
    }

    void record(long hi, long lo) {
        if (overflowed) {
            return;
        }
        if (size == capacity) {
            invalidate();
            return;
        }
        if (2 * size == touched.length) {
            touched = Arrays.copyOf(touched, 2 * Math.min(capacity, 2 * size));
        }
        touched[2 * size] = hi;
        touched[2 * size + 1] = lo;
        size++;
    }

    /** What was recorded no longer describes the change (overflow, or the cache was cleared): snapshot next. */
    void invalidate() {
        overflowed = true;
        size = 0;
    }

    boolean needsSnapshot() {
        return overflowed;
    }

    /** The recorded hashes netted against the cache now (see the class comment); empties the record. */
    PrefixCacheUpdate.Delta drainDelta(PrefixCacheIndex cache) {
        long[] stored = new long[2 * size];
        long[] removed = new long[2 * size];
        int numStored = 0;
        int numRemoved = 0;
        long[] seen = new long[2 * Integer.highestOneBit(Math.max(1, 2 * size)) * 2]; // pairs, >= 2x the entries
        int mask = seen.length / 2 - 1;
        for (int i = 0; i < size; i++) {
            long hi = touched[2 * i];
            long lo = touched[2 * i + 1];
            if (!addOnce(seen, mask, hi, lo)) {
                continue;
            }
            if (cache.contains(hi, lo)) {
                stored[2 * numStored] = hi;
                stored[2 * numStored++ + 1] = lo;
            } else {
                removed[2 * numRemoved] = hi;
                removed[2 * numRemoved++ + 1] = lo;
            }
        }
        clear();
        return new PrefixCacheUpdate.Delta(Arrays.copyOf(stored, 2 * numStored), Arrays.copyOf(removed, 2 * numRemoved));
    }

    void clear() {
        size = 0;
        overflowed = false;
        if (touched.length > 2 * 4096) {
            touched = new long[2 * 64]; // NOTE: one burst does not pin its peak for the replica's lifetime
        }
    }

    /**
     * Adds the pair to an open-addressing set of pairs (linear probing; (0, 0) marks an empty slot and is
     * {@link BlockHash#ROOT}, never a stored hash).
     *
     * @return whether it was new
     */
    private static boolean addOnce(long[] set, int mask, long hi, long lo) {
        for (int s = (int) ((hi ^ Long.rotateLeft(lo, 32)) * 0x9E3779B97F4A7C15L >>> 40) & mask; ;
                s = (s + 1) & mask) {
            if (set[2 * s] == 0 && set[2 * s + 1] == 0) {
                set[2 * s] = hi;
                set[2 * s + 1] = lo;
                return true;
            }
            if (set[2 * s] == hi && set[2 * s + 1] == lo) {
                return false;
            }
        }
    }
}
