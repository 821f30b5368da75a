package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class FreeBlockQueueTest {

    @Test
    void startsWithAllBlocksInIdOrder() {
        FreeBlockQueue queue = new FreeBlockQueue(4);
        assertArrayEquals(new int[] {0, 1, 2, 3}, queue.toArray());
        assertEquals(0, queue.popFront());
        assertEquals(1, queue.popFront());
        assertEquals(2, queue.size());
    }

    @Test
    void removesFromTheMiddleAndKeepsOrder() {
        FreeBlockQueue queue = new FreeBlockQueue(5);
        queue.remove(2);
        queue.remove(0);
        queue.remove(4);
        assertArrayEquals(new int[] {1, 3}, queue.toArray());
        assertFalse(queue.contains(2));
        queue.pushBack(2);
        queue.pushFront(4);
        assertArrayEquals(new int[] {4, 1, 3, 2}, queue.toArray());
    }

    @Test
    void rejectsDoubleInsertAndRemovingAbsentBlocks() {
        FreeBlockQueue queue = new FreeBlockQueue(2);
        assertThrows(IllegalStateException.class, () -> queue.pushBack(1));
        queue.popFront();
        assertThrows(IllegalStateException.class, () -> queue.remove(0));
        queue.popFront();
        assertThrows(IllegalStateException.class, queue::popFront);
        assertEquals(0, queue.toArray().length);
    }
}
