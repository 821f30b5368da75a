package io.kvass.scheduler.router;

import java.util.Arrays;

/**
 * The gateway's index of which replicas hold which prefix blocks: block hash (128 bits) -> the set of replica
 * slots holding it, as a bit set. One index for all replicas, so matching a prompt costs one lookup per prompt
 * block however many replicas there are (Dynamo's KV indexer and SGLang's radix tree are shared the same way); a
 * set per replica would cost a lookup per block per replica.
 *
 * <p>Open addressing with linear probing over one flat array: slot s is {@code table[stride*s] = hi,
 * table[stride*s + 1] = lo}, then {@code words} longs of replica bits; {@code (hi, lo) = (0, 0)} (the chain's root,
 * never a block's hash) marks an empty slot. Removal shifts the rest of the probe run back, no tombstones. The
 * table doubles when half full; the bit sets widen when a replica slot beyond them is used.
 *
 * <p>NOTE: not thread-safe; one gateway actor owns it.
 */
final class PrefixIndex {
    private static final int MIN_CAPACITY = 64;

    private int words;
    private int stride;
    private long[] table;
    private int mask;
    private int size;

    PrefixIndex() {
        words = 1;
        stride = 3;
        table = new long[stride * MIN_CAPACITY];
        mask = MIN_CAPACITY - 1;
    }

    /** Distinct hashes held by any replica. */
    int size() {
        return size;
    }

    void add(int replica, long hi, long lo) {
        if (hi == 0 && lo == 0) {
            return; // NOTE: the chain's root, never a block's hash; it would read as an empty slot
        }
        if (replica >= 64 * words) {
            rebuild(mask + 1, replica / 64 + 1);
        }
        if (2 * (size + 1) > mask + 1) {
            rebuild(2 * (mask + 1), words);
        }
        int s = home(hi, lo);
        for (; !isEmpty(s); s = (s + 1) & mask) {
            if (table[stride * s] == hi && table[stride * s + 1] == lo) {
                table[stride * s + 2 + replica / 64] |= 1L << replica;
                return;
            }
        }
        table[stride * s] = hi;
        table[stride * s + 1] = lo;
        table[stride * s + 2 + replica / 64] = 1L << replica;
        size++;
    }

    void remove(int replica, long hi, long lo) {
        int s = find(hi, lo);
        if (s < 0 || replica >= 64 * words) {
            return;
        }
        table[stride * s + 2 + replica / 64] &= ~(1L << replica);
        if (noBits(s)) {
            delete(s);
        }
    }

    boolean holds(int replica, long hi, long lo) {
        int s = find(hi, lo);
        return s >= 0 && replica < 64 * words && (table[stride * s + 2 + replica / 64] & (1L << replica)) != 0;
    }

    /** Forgets everything the replica held (a snapshot replaces it, or the replica left): one pass over the table. */
    void clear(int replica) {
        if (replica >= 64 * words) {
            return;
        }
        long bit = 1L << replica;
        int w = replica / 64;
        boolean emptied = false;
        for (int s = 0; s <= mask; s++) {
            if (!isEmpty(s) && (table[stride * s + 2 + w] & bit) != 0) {
                table[stride * s + 2 + w] &= ~bit;
                emptied |= noBits(s);
            }
        }
        if (emptied) {
            rebuild(mask + 1, words); // NOTE: drops the entries nobody holds any more, in one pass
        }
    }

    /**
     * For each replica slot below {@code matched.length}, how many leading blocks of the prompt it holds: the
     * blocks a replica's own prefix-cache lookup would hit (it stops at the first miss).
     *
     * @param hashes pair array of the prompt's block hashes, block 0 first
     * @param active scratch of at least {@link #words()} longs
     */
    void matchLeading(long[] hashes, int[] matched, long[] active) {
        Arrays.fill(matched, 0);
        int n = hashes.length / 2;
        if (n == 0) {
            return;
        }
        int s = find(hashes[0], hashes[1]);
        if (s < 0) {
            return;
        }
        int w = words;
        System.arraycopy(table, stride * s + 2, active, 0, w);
        for (int i = 1; i < n; i++) {
            s = find(hashes[2 * i], hashes[2 * i + 1]);
            boolean any = false;
            for (int k = 0; k < w; k++) {
                long holders = s < 0 ? 0 : table[stride * s + 2 + k];
                long dropped = active[k] & ~holders;
                while (dropped != 0) {
                    int r = 64 * k + Long.numberOfTrailingZeros(dropped);
                    if (r < matched.length) {
                        matched[r] = i;
                    }
                    dropped &= dropped - 1;
                }
                active[k] &= holders;
                any |= active[k] != 0;
            }
            if (!any) {
                return;
            }
        }
        for (int k = 0; k < w; k++) {
            for (long left = active[k]; left != 0; left &= left - 1) {
                int r = 64 * k + Long.numberOfTrailingZeros(left);
                if (r < matched.length) {
                    matched[r] = n;
                }
            }
        }
    }

    /** Longs per bit set: a scratch for {@link #matchLeading} needs this many. */
    int words() {
        return words;
    }

    private int find(long hi, long lo) {
        for (int s = home(hi, lo); !isEmpty(s); s = (s + 1) & mask) {
            if (table[stride * s] == hi && table[stride * s + 1] == lo) {
                return s;
            }
        }
        return -1;
    }

    private boolean isEmpty(int s) {
        return table[stride * s] == 0 && table[stride * s + 1] == 0;
    }

    private boolean noBits(int s) {
        for (int k = 0; k < words; k++) {
            if (table[stride * s + 2 + k] != 0) {
                return false;
            }
        }
        return true;
    }

    private void delete(int hole) {
        size--;
        // NOTE: an entry later in the run moves into the hole when the hole lies between its home and its slot;
        // otherwise a lookup from its home would stop at the hole and miss it.
        for (int s = (hole + 1) & mask; !isEmpty(s); s = (s + 1) & mask) {
            int home = home(table[stride * s], table[stride * s + 1]);
            if (((s - home) & mask) >= ((s - hole) & mask)) {
                System.arraycopy(table, stride * s, table, stride * hole, stride);
                hole = s;
            }
        }
        Arrays.fill(table, stride * hole, stride * hole + stride, 0L);
    }

    /** Rehashes every entry that some replica holds into a table of {@code capacity} slots, {@code newWords} wide. */
    private void rebuild(int capacity, int newWords) {
        long[] old = table;
        int oldStride = stride;
        int oldWords = words;
        words = newWords;
        stride = 2 + newWords;
        int live = 0;
        for (int i = 0; i < old.length; i += oldStride) {
            if ((old[i] != 0 || old[i + 1] != 0) && anyBits(old, i + 2, oldWords)) {
                live++;
            }
        }
        while (capacity > MIN_CAPACITY && 8 * live < capacity) {
            capacity /= 2; // NOTE: shrinks after replicas left, so matching walks a table sized to what is held
        }
        while (2 * live > capacity) {
            capacity *= 2;
        }
        table = new long[stride * capacity];
        mask = capacity - 1;
        size = 0;
        for (int i = 0; i < old.length; i += oldStride) {
            if ((old[i] != 0 || old[i + 1] != 0) && anyBits(old, i + 2, oldWords)) {
                int s = home(old[i], old[i + 1]);
                while (!isEmpty(s)) {
                    s = (s + 1) & mask;
                }
                System.arraycopy(old, i, table, stride * s, 2 + oldWords);
                size++;
            }
        }
    }

    private static boolean anyBits(long[] a, int from, int n) {
        for (int k = 0; k < n; k++) {
            if (a[from + k] != 0) {
                return true;
            }
        }
        return false;
    }

    /** Fibonacci hashing: block hashes are SHA-256 bits already, but tests may pass any values. */
    private int home(long hi, long lo) {
        return (int) (((hi ^ Long.rotateLeft(lo, 32)) * 0x9E3779B97F4A7C15L) >>> 32) & mask;
    }
}
