package io.kvass.kvpaging;

import java.util.Arrays;

/**
 * What a replica tells the gateways about its prefix cache, so they can route a prompt to where its leading
 * blocks are already cached (as NVIDIA Dynamo's KV router does with KV events): either the change since the
 * previous update or the whole cache. Drained from {@link KvCacheManager#drainPrefixCacheUpdate(boolean)}.
 *
 * <p>Hashes travel as flat {@code long[]} arrays of pairs: hash i is {@code (a[2i], a[2i + 1])}, its
 * {@link BlockHash#hi()} and {@link BlockHash#lo()}. Exact (the full 128 bits), and one array per list instead
 * of an object per hash, for the wire and for whoever applies thousands of them.
 *
 * <p>NOTE: the records do not reject an odd-length array (the wire layer builds sample messages field by field); a
 * receiver checks {@link #isWellFormed()} and treats a malformed update as a lost one.
 */
public sealed interface PrefixCacheUpdate {

    /** Number of hashes in a pair array. */
    static int count(long[] pairs) {
        return pairs.length / 2;
    }

    /** Hash i of a pair array. */
    static BlockHash at(long[] pairs, int i) {
        return new BlockHash(pairs[2 * i], pairs[2 * i + 1]);
    }

    /**
     * The change since the previous update: {@code stored} holds hashes the cache holds now, {@code removed}
     * hashes it does not; every hash the cache gained or lost since the previous update is in one of them.
     * Applying both (add {@code stored}, remove {@code removed}) to the set the previous update described gives the
     * cache's set now, exactly.
     *
     * <p>NOTE: netted against the cache when drained ({@link PrefixCacheEvents}), so the two are disjoint, each holds
     * a hash at most once, and the order of applying them does not matter. A hash evicted and stored again within
     * the interval is in {@code stored} (the receiver already has it); one stored and evicted again is in
     * {@code removed} (the receiver never had it): both are no-ops for the receiver.
     */
    record Delta(long[] stored, long[] removed) implements PrefixCacheUpdate {
        public boolean isEmpty() {
            return stored.length == 0 && removed.length == 0;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Delta d && Arrays.equals(stored, d.stored) && Arrays.equals(removed, d.removed);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(stored) + Arrays.hashCode(removed);
        }

        @Override
        public String toString() {
            return "Delta[stored=" + count(stored) + ", removed=" + count(removed) + "]";
        }
    }

    /** Every hash the cache holds (in no particular order): replaces whatever the receiver knew. */
    record Snapshot(long[] held) implements PrefixCacheUpdate {
        @Override
        public boolean equals(Object o) {
            return o instanceof Snapshot s && Arrays.equals(held, s.held);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(held);
        }

        @Override
        public String toString() {
            return "Snapshot[held=" + count(held) + "]";
        }
    }

    /** Whether every array of the update is a whole number of pairs (checked by the receiver, see the class note). */
    default boolean isWellFormed() {
        return switch (this) {
            case Delta d -> (d.stored().length & 1) == 0 && (d.removed().length & 1) == 0;
            case Snapshot s -> (s.held().length & 1) == 0;
        };
    }
}
