package io.kvass.scheduler.core;

import io.kvass.kvpaging.KvCacheManager;
import io.kvass.worker.step.ContinuingSequence;
import java.util.Arrays;
import java.util.Comparator;

/**
 * The running sequences in policy order, with what the scheduler's per-step loops read and write of each
 * (id, token count and array, computed and scheduled counts, KV capacity and handle, stop rules, plan entry) in
 * parallel arrays indexed by a slot the sequence keeps while it runs.
 *
 * <p>Why arrays and not the {@link SequenceState} fields: a step visits every running sequence twice
 * ({@code schedule} and {@code update}), and a {@code SequenceState} spans two cache lines wherever it lies in
 * the heap, so a thousand sequences were some four thousand scattered misses per step. Here a thousand
 * sequences' counters are 4 KB per array, which stay in cache from one step to the next. (The plan visits the
 * slots in no particular order, as slots are reused; one int[] with each slot's numbers side by side measured no
 * different.)
 *
 * <p>NOTE: while a sequence is in the table its token count and array live here only ({@link SequenceState}
 * asks the table for them); {@link #remove} and {@link #removeLast} hand them back. A slot is free again once
 * its sequence leaves and may then be given to the next one added; {@link #sequence} is null for a free slot.
 */
final class RunningTable {
    private static final int NOT_RUNNING = -1;
    // NOTE: tokens appended to a slot are buffered here, that many at most, and written to its token array when the
    // buffer is full or the array is read (for a block's hash, once per block). An append into the token array
    // itself touched two scattered cache lines per sequence per step (its header and its tail): 10-15 µs of a
    // thousand-sequence step. Block-sized, so a decoding sequence writes its array about once per block.
    static final int PENDING_TOKENS = 16;

    private final Comparator<SequenceState> order;
    private int[] slotsInOrder; // the first size entries: the slots of the running sequences in policy order
    private int size;
    private int[] freeSlots; // a stack of the slots nobody holds; the first numFree entries
    private int numFree;

    private SequenceState[] sequences;
    private String[] seqIds;
    private KvCacheManager.Handle[] kvHandles;
    private int[][] tokens;
    private int[] numTokens; // with the pending ones
    private int[] pendingTokens; // slot s: entries [s * PENDING_TOKENS, s * PENDING_TOKENS + numPending[s])
    private int[] numPending;
    private int[] numComputed;
    private int[] numScheduled;
    private int[] kvCapacity;
    private ContinuingSequence[] decodeEntries;
    private int[] minLength;
    private int[] maxLength;
    private boolean[] ignoreEos;
    private int[][] stopTokenIds;

    RunningTable(Comparator<SequenceState> order, int initialCapacity) {
        this.order = order;
        slotsInOrder = new int[0];
        freeSlots = new int[0];
        sequences = new SequenceState[0];
        seqIds = new String[0];
        kvHandles = new KvCacheManager.Handle[0];
        tokens = new int[0][];
        numTokens = new int[0];
        pendingTokens = new int[0];
        numPending = new int[0];
        numComputed = new int[0];
        numScheduled = new int[0];
        kvCapacity = new int[0];
        decodeEntries = new ContinuingSequence[0];
        minLength = new int[0];
        maxLength = new int[0];
        ignoreEos = new boolean[0];
        stopTokenIds = new int[0][];
        grow(Math.max(1, initialCapacity));
    }

    int size() {
        return size;
    }

    boolean isEmpty() {
        return size == 0;
    }

    /** The slot of the running sequence at {@code position} in policy order. */
    int slotAt(int position) {
        return slotsInOrder[position];
    }

    /** The sequence holding {@code slot}, or null when the slot is free. */
    SequenceState sequence(int slot) {
        return sequences[slot];
    }

    /**
     * Adds a sequence that was just given KV blocks holding its first {@code computed} tokens, in its place in
     * policy order; it takes its tokens along. Returns its slot.
     */
    int add(SequenceState seq, KvCacheManager.Handle kvHandle, int computed) {
        if (numFree == 0) {
            grow(2 * sequences.length);
        }
        int slot = freeSlots[--numFree];
        sequences[slot] = seq;
        seqIds[slot] = seq.seqId();
        kvHandles[slot] = kvHandle;
        tokens[slot] = seq.tokenArray();
        numTokens[slot] = seq.numTokens();
        numPending[slot] = 0;
        numComputed[slot] = computed;
        numScheduled[slot] = 0;
        kvCapacity[slot] = 0; // NOTE: unknown until its first allocation as a running sequence
        decodeEntries[slot] = null;
        minLength[slot] = seq.minLength();
        maxLength[slot] = seq.maxLength();
        ignoreEos[slot] = seq.ignoresEos();
        stopTokenIds[slot] = seq.stopTokenIds();
        int at = insertionPoint(seq);
        System.arraycopy(slotsInOrder, at, slotsInOrder, at + 1, size - at);
        slotsInOrder[at] = slot;
        size++;
        seq.enterRunning(this, slot);
        return slot;
    }

    /** Takes a running sequence out; it gets its tokens back. */
    void remove(SequenceState seq) {
        int slot = seq.runningSlot();
        if (slot == NOT_RUNNING || sequences[slot] != seq) {
            throw new IllegalArgumentException(seq.seqId() + " is not in the running table");
        }
        int at = 0;
        while (slotsInOrder[at] != slot) {
            at++;
        }
        System.arraycopy(slotsInOrder, at + 1, slotsInOrder, at, size - at - 1);
        size--;
        release(slot);
    }

    /** Takes out the last running sequence in policy order (the one to preempt), which gets its tokens back. */
    SequenceState removeLast() {
        if (size == 0) {
            throw new IllegalStateException("no running sequence");
        }
        int slot = slotsInOrder[--size];
        SequenceState seq = sequences[slot];
        release(slot);
        return seq;
    }

    /** The sequence's id, which its plan entries carry: read here, as its {@link SequenceState} is a cache miss. */
    String seqId(int slot) {
        return seqIds[slot];
    }

    KvCacheManager.Handle kvHandle(int slot) {
        return kvHandles[slot];
    }

    /** Its token array, with every token appended so far: only the first {@link #numTokens} entries are tokens. */
    int[] tokens(int slot) {
        writePending(slot);
        return tokens[slot];
    }

    int numTokens(int slot) {
        return numTokens[slot];
    }

    void append(int slot, int token) {
        int pending = numPending[slot];
        if (pending == PENDING_TOKENS) {
            writePending(slot);
            pending = 0;
        }
        pendingTokens[slot * PENDING_TOKENS + pending] = token;
        numPending[slot] = pending + 1;
        numTokens[slot]++;
    }

    /** Writes the slot's pending tokens to its token array, which grows by doubling when they do not fit. */
    private void writePending(int slot) {
        int pending = numPending[slot];
        if (pending == 0) {
            return;
        }
        int[] array = tokens[slot];
        int n = numTokens[slot];
        if (n > array.length) {
            array = Arrays.copyOf(array, Math.max(n, 2 * array.length));
            tokens[slot] = array;
        }
        System.arraycopy(pendingTokens, slot * PENDING_TOKENS, array, n - pending, pending);
        numPending[slot] = 0;
    }

    int numComputed(int slot) {
        return numComputed[slot];
    }

    void setComputed(int slot, int n) {
        numComputed[slot] = n;
    }

    /** Tokens the last plan computes for the sequence, from {@link #numComputed} on. */
    int numScheduled(int slot) {
        return numScheduled[slot];
    }

    void setScheduled(int slot, int n) {
        numScheduled[slot] = n;
    }

    /**
     * Tokens its KV blocks hold. A step that stays within them needs no {@code KvCacheManager.allocateSlots}
     * call, which would change nothing: it takes a block only for a token past them, and copies one only when a
     * fork shares it (this scheduler never forks).
     */
    int kvCapacity(int slot) {
        return kvCapacity[slot];
    }

    void setKvCapacity(int slot, int tokens) {
        kvCapacity[slot] = tokens;
        decodeEntries[slot] = null;
    }

    /**
     * Its plan entry for one token within the blocks it holds: the same every step until it takes a block, so
     * made once (null until needed, reset with the KV capacity) and shared by those plans, immutable as they are.
     */
    ContinuingSequence decodeEntry(int slot) {
        return decodeEntries[slot];
    }

    void setDecodeEntry(int slot, ContinuingSequence entry) {
        decodeEntries[slot] = entry;
    }

    /** Tokens from which EOS and stop tokens end it (min_tokens). */
    int minLength(int slot) {
        return minLength[slot];
    }

    /** Tokens at which it ends (max_tokens, or the model's context length). */
    int maxLength(int slot) {
        return maxLength[slot];
    }

    boolean ignoresEos(int slot) {
        return ignoreEos[slot];
    }

    /** Its stop token ids besides EOS; empty when none. */
    int[] stopTokenIds(int slot) {
        return stopTokenIds[slot];
    }

    private void release(int slot) {
        SequenceState seq = sequences[slot];
        seq.leaveRunning(tokens(slot), numTokens[slot]);
        sequences[slot] = null;
        seqIds[slot] = null;
        kvHandles[slot] = null;
        tokens[slot] = null;
        decodeEntries[slot] = null;
        stopTokenIds[slot] = null;
        freeSlots[numFree++] = slot;
    }

    /** Where {@code seq} goes in policy order: after every sequence that comes before it. */
    private int insertionPoint(SequenceState seq) {
        int low = 0;
        int high = size;
        while (low < high) {
            int mid = (low + high) >>> 1;
            if (order.compare(sequences[slotsInOrder[mid]], seq) < 0) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        return low;
    }

    private void grow(int capacity) {
        int old = sequences.length;
        slotsInOrder = Arrays.copyOf(slotsInOrder, capacity);
        freeSlots = Arrays.copyOf(freeSlots, capacity);
        // NOTE: the new slots are handed out lowest first
        for (int slot = capacity - 1; slot >= old; slot--) {
            freeSlots[numFree++] = slot;
        }
        sequences = Arrays.copyOf(sequences, capacity);
        seqIds = Arrays.copyOf(seqIds, capacity);
        kvHandles = Arrays.copyOf(kvHandles, capacity);
        tokens = Arrays.copyOf(tokens, capacity);
        numTokens = Arrays.copyOf(numTokens, capacity);
        pendingTokens = Arrays.copyOf(pendingTokens, capacity * PENDING_TOKENS);
        numPending = Arrays.copyOf(numPending, capacity);
        numComputed = Arrays.copyOf(numComputed, capacity);
        numScheduled = Arrays.copyOf(numScheduled, capacity);
        kvCapacity = Arrays.copyOf(kvCapacity, capacity);
        decodeEntries = Arrays.copyOf(decodeEntries, capacity);
        minLength = Arrays.copyOf(minLength, capacity);
        maxLength = Arrays.copyOf(maxLength, capacity);
        ignoreEos = Arrays.copyOf(ignoreEos, capacity);
        stopTokenIds = Arrays.copyOf(stopTokenIds, capacity);
    }
}
