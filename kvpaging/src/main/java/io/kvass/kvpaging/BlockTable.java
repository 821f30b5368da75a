package io.kvass.kvpaging;

import java.util.Arrays;
import java.util.Objects;

/** One sequence's block ids in token order: token t lives in block {@code get(t / blockSize)}. */
final class BlockTable {
    private int[] ids;
    private int size;

    BlockTable() {
        ids = new int[8];
    }

    private BlockTable(int[] ids, int size) {
        this.ids = ids;
        this.size = size;
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

    int[] toArray(int from) {
        return from == size ? NONE : Arrays.copyOfRange(ids, from, size);
    }

    /** The delta of a step that changed nothing: every decode step but one in blockSize. */
    private static final int[] NONE = new int[0];

    BlockTable copy() {
        return new BlockTable(ids.clone(), size);
    }
}
