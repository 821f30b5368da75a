package io.kvass.worker.lora;

import java.util.function.LongPredicate;

/**
 * Which adapter occupies each backend slot ({@code 1..maxLoras}), and when each was last used.
 * NOTE: not thread-safe; {@link AdapterManager} guards it.
 */
final class AdapterSlots {
    private static final long FREE = 0;

    private final long[] owner;   // [maxLoras + 1]; slot 0 is the base model and never assigned
    private final long[] lastUse; // [maxLoras + 1]
    private long clock;

    AdapterSlots(int maxLoras) {
        this.owner = new long[maxLoras + 1];
        this.lastUse = new long[maxLoras + 1];
    }

    int maxLoras() {
        return owner.length - 1;
    }

    /** The slot holding adapter {@code id}, or 0. */
    int slotOf(long id) {
        for (int s = 1; s < owner.length; s++) {
            if (owner[s] == id) {
                return s;
            }
        }
        return 0;
    }

    long owner(int slot) {
        return owner[slot];
    }

    /** An empty slot, or 0 when all are taken. */
    int free() {
        return slotOf(FREE);
    }

    /**
     * The slot to reuse when none is free: among slots whose adapter is {@code evictable}, one whose
     * adapter is {@code idle} if any, the least recently used first; 0 when no slot may be taken.
     */
    int victim(LongPredicate evictable, LongPredicate idle) {
        int best = 0;
        boolean bestIdle = false;
        for (int s = 1; s < owner.length; s++) {
            if (owner[s] == FREE || !evictable.test(owner[s])) {
                continue;
            }
            boolean isIdle = idle.test(owner[s]);
            if (best == 0 || (isIdle && !bestIdle) || (isIdle == bestIdle && lastUse[s] < lastUse[best])) {
                best = s;
                bestIdle = isIdle;
            }
        }
        return best;
    }

    void assign(int slot, long id) {
        owner[slot] = id;
        touch(slot);
    }

    void touch(int slot) {
        lastUse[slot] = ++clock;
    }

    void clear(int slot) {
        owner[slot] = FREE;
    }
}
