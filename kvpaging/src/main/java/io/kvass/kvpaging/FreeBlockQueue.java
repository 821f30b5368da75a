package io.kvass.kvpaging;

import java.util.Arrays;

/**
 * Free block ids in eviction order: the head is taken first. A doubly linked list threaded
 * through preallocated arrays, so taking a cached block out of the middle (a prefix hit on a free
 * block) is O(1) and nothing allocates on the hot path.
 *
 * <p>NOTE: index {@code numBlocks} is the sentinel of a circular list; {@code prev(b) == ABSENT}
 * exactly when block b is not in the queue. A block's two links sit side by side ({@code links[2b]} and
 * {@code links[2b + 1]}), so unlinking it reads one cache line, not one in each of two arrays.
 */
final class FreeBlockQueue {
    private static final int ABSENT = -1;

    private final int sentinel;
    private final int[] links;
    private int size;

    /** All blocks free, in id order (block 0 is taken first). */
    FreeBlockQueue(int numBlocks) {
        sentinel = numBlocks;
        links = new int[2 * (numBlocks + 1)];
        Arrays.fill(links, ABSENT);
        setPrev(sentinel, sentinel);
        setNext(sentinel, sentinel);
        for (int b = 0; b < numBlocks; b++) {
            pushBack(b);
        }
    }

    int size() {
        return size;
    }

    boolean contains(int block) {
        return prev(block) != ABSENT;
    }

    /** Last to be taken. */
    void pushBack(int block) {
        insertAfter(prev(sentinel), block);
    }

    /** Next to be taken. */
    void pushFront(int block) {
        insertAfter(sentinel, block);
    }

    int popFront() {
        if (size == 0) {
            throw new IllegalStateException("no free block");
        }
        int block = next(sentinel);
        remove(block);
        return block;
    }

    void remove(int block) {
        if (!contains(block)) {
            throw new IllegalStateException("block " + block + " is not free");
        }
        int before = prev(block);
        int after = next(block);
        setNext(before, after);
        setPrev(after, before);
        setPrev(block, ABSENT);
        setNext(block, ABSENT);
        size--;
    }

    /** Head to tail; walks the links, so it also proves they are intact (used by invariant checks). */
    int[] toArray() {
        int[] out = new int[size];
        int at = sentinel;
        for (int i = 0; i < size; i++) {
            int nextBlock = next(at);
            if (nextBlock == sentinel || nextBlock == ABSENT || prev(nextBlock) != at) {
                throw new IllegalStateException("free queue broken after " + at);
            }
            out[i] = nextBlock;
            at = nextBlock;
        }
        if (next(at) != sentinel || prev(sentinel) != at) {
            throw new IllegalStateException("free queue longer than its size " + size);
        }
        return out;
    }

    private void insertAfter(int at, int block) {
        if (contains(block)) {
            throw new IllegalStateException("block " + block + " is already free");
        }
        int after = next(at);
        setPrev(block, at);
        setNext(block, after);
        setNext(at, block);
        setPrev(after, block);
        size++;
    }

    private int prev(int block) {
        return links[2 * block];
    }

    private int next(int block) {
        return links[2 * block + 1];
    }

    private void setPrev(int block, int to) {
        links[2 * block] = to;
    }

    private void setNext(int block, int to) {
        links[2 * block + 1] = to;
    }
}
