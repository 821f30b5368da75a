package io.kvass.kvpaging;

import java.util.Arrays;
import java.util.List;

/**
 * The answer to a request for KV slots: granted, or no space — as a value, so the scheduler
 * preempts instead of catching. {@code NoSpace} leaves the manager exactly as it was.
 */
public sealed interface Allocation {

    default boolean isGranted() {
        return this instanceof Granted;
    }

    /**
     * @param firstChangedIndex entries of the block table from this index on are new or replaced
     *                          (the table's old size when nothing changed); the delta to ship
     * @param copies            copy-on-write instructions the backend must run before the step
     */
    record Granted(int firstChangedIndex, List<BlockCopy> copies) implements Allocation {
        // NOTE: a running request's step changes nothing 15 times in 16 (decode, 16-token blocks): those
        // answers are shared, so a step over a thousand requests allocates none.
        private static final Granted[] UNCHANGED = new Granted[1024];

        static {
            Arrays.setAll(UNCHANGED, size -> new Granted(size, List.of()));
        }

        public Granted {
            copies = List.copyOf(copies);
        }

        /** Nothing new or replaced in a table of {@code tableSize} entries, nothing to copy. */
        public static Granted unchanged(int tableSize) {
            return tableSize < UNCHANGED.length ? UNCHANGED[tableSize] : new Granted(tableSize, List.of());
        }
    }

    /** @param blocksNeeded free blocks the request would have taken; {@code blocksFree} the pool had */
    record NoSpace(int blocksNeeded, int blocksFree) implements Allocation {}
}
