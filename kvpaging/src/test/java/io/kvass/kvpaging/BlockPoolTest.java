package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class BlockPoolTest {
    private static final BlockHash H1 = new BlockHash(1, 1);
    private static final BlockHash H2 = new BlockHash(2, 2);
    private static final BlockHash H3 = new BlockHash(3, 3);

    private final BlockPool pool = new BlockPool(4);

    @AfterEach
    void consistent() {
        pool.checkInvariants();
    }

    @Test
    void allocatesFromTheHeadAndCountsUsage() {
        assertEquals(0, pool.allocate());
        assertEquals(1, pool.allocate());
        assertEquals(2, pool.numFree());
        assertEquals(0.5, pool.usage(), 1e-12);
        assertEquals(1, pool.refCount(0));
        assertEquals(0, pool.refCount(3));
    }

    @Test
    void cachedBlocksAreEvictedLeastRecentlyReleasedFirst() {
        int a = pool.allocate();
        int b = pool.allocate();
        int c = pool.allocate();
        pool.cache(a, H1);
        pool.cache(b, H2);
        pool.cache(c, H3);
        pool.release(b);
        pool.release(a);
        pool.release(c);
        // 3 was never used; then b, a, c in release order
        assertArrayEquals(new int[] {3, b, a, c}, pool.freeQueueOrder());
        assertEquals(3, pool.allocate());
        assertEquals(b, pool.allocate());
        assertEquals(a, pool.allocate());
        assertEquals(c, pool.allocate());
    }

    @Test
    void uncachedReleasedBlocksAreReusedBeforeCachedOnes() {
        int a = pool.allocate();
        int b = pool.allocate();
        pool.cache(a, H1);
        pool.release(a);
        pool.release(b);
        assertArrayEquals(new int[] {b, 2, 3, a}, pool.freeQueueOrder());
    }

    @Test
    void allocatingACachedFreeBlockEvictsItsHash() {
        BlockPool small = new BlockPool(1);
        int a = small.allocate();
        small.cache(a, H1);
        small.release(a);
        assertEquals(OptionalInt.of(a), small.cachedBlock(H1), "a free block stays findable");
        assertEquals(a, small.allocate());
        assertEquals(OptionalInt.empty(), small.cachedBlock(H1));
        assertEquals(Optional.empty(), small.hashOf(a));
        assertEquals(0, small.numCachedBlocks());
        small.checkInvariants();
    }

    @Test
    void touchingACachedFreeBlockTakesItOutOfTheFreeQueue() {
        int a = pool.allocate();
        pool.cache(a, H1);
        pool.release(a);
        assertEquals(4, pool.numFree());
        pool.touch(a);
        assertEquals(3, pool.numFree());
        assertEquals(1, pool.refCount(a));
        assertEquals(Optional.of(H1), pool.hashOf(a), "a hit keeps the hash");
        assertArrayEquals(new int[] {1, 2, 3}, pool.freeQueueOrder());
    }

    @Test
    void referenceCountsAreExact() {
        int a = pool.allocate();
        pool.touch(a);
        pool.touch(a);
        assertEquals(3, pool.refCount(a));
        pool.release(a);
        pool.release(a);
        assertEquals(3, pool.numFree());
        pool.release(a);
        assertEquals(4, pool.numFree());
        assertThrows(IllegalStateException.class, () -> pool.release(a));
    }

    @Test
    void firstBlockWithAContentStaysTheCachedOne() {
        int a = pool.allocate();
        int b = pool.allocate();
        assertTrue(pool.cache(a, H1));
        assertTrue(pool.cache(a, H1), "re-registering the same content is a no-op");
        assertFalse(pool.cache(b, H1));
        assertEquals(OptionalInt.of(a), pool.cachedBlock(H1));
        assertEquals(Optional.empty(), pool.hashOf(b));
        assertThrows(IllegalStateException.class, () -> pool.cache(a, H2));
        assertThrows(IllegalStateException.class, () -> pool.cache(3, H3), "free blocks hold nothing to cache");
    }

    @Test
    void resetForgetsCachedPrefixesOnlyWhenNothingIsInUse() {
        int a = pool.allocate();
        pool.cache(a, H1);
        assertFalse(pool.resetPrefixCache());
        pool.release(a);
        assertTrue(pool.resetPrefixCache());
        assertEquals(OptionalInt.empty(), pool.cachedBlock(H1));
        assertEquals(0, pool.numCachedBlocks());
    }

    @Test
    void rejectsBadIds() {
        assertThrows(IndexOutOfBoundsException.class, () -> pool.touch(4));
        assertThrows(IndexOutOfBoundsException.class, () -> pool.refCount(-1));
        assertThrows(IllegalArgumentException.class, () -> new BlockPool(0));
    }
}
