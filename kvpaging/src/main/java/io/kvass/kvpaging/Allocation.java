package io.kvass.kvpaging;

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
        public Granted {
            copies = List.copyOf(copies);
        }
    }

    /** @param blocksNeeded free blocks the request would have taken; {@code blocksFree} the pool had */
    record NoSpace(int blocksNeeded, int blocksFree) implements Allocation {}
}
