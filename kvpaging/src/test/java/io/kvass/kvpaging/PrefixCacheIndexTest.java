package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class PrefixCacheIndexTest {

    @Test
    void findsBothWaysAndRefusesAHashAnotherBlockHolds() {
        PrefixCacheIndex index = new PrefixCacheIndex(4);
        BlockHash h = new BlockHash(7, 9);
        assertTrue(index.add(2, h));
        assertEquals(2, index.blockOf(h));
        assertEquals(h, index.hashOf(2));
        assertFalse(index.add(3, h), "the first block keeps the hash");
        assertFalse(index.isCached(3));
        index.remove(2);
        assertEquals(-1, index.blockOf(h));
        assertNull(index.hashOf(2));
        assertEquals(0, index.size());
    }

    /** Removals are queued: whichever call comes next sees all of them. */
    @Test
    void everyCallSeesTheRemovalsBeforeIt() {
        PrefixCacheIndex index = new PrefixCacheIndex(8);
        for (int b = 0; b < 8; b++) {
            assertTrue(index.add(b, new BlockHash(b % 2, b / 2))); // two probe runs that interleave
        }
        index.remove(1);
        index.remove(4);
        assertFalse(index.isCached(1));
        index.remove(6);
        assertNull(index.hashOf(6));
        index.remove(3);
        assertEquals(-1, index.blockOf(new BlockHash(1, 1)));
        assertEquals(7, index.blockOf(new BlockHash(1, 3)), "an entry behind removed ones is still found");
        index.remove(0);
        index.remove(0); // NOTE: a block whose hash is already gone: nothing to do
        assertEquals(3, index.size());
        index.remove(2);
        assertTrue(index.add(2, new BlockHash(0, 0)), "its hash is free again: block 0 was removed");
        assertEquals(3, index.size());
        index.remove(5);
        index.clear();
        assertEquals(0, index.size());
        assertTrue(index.add(5, new BlockHash(9, 9)), "clear drops what was queued with the rest");
        assertEquals(5, index.blockOf(new BlockHash(9, 9)));
    }

    /**
     * Random adds and removes against a HashMap, with few distinct hashes and a small table, so probe runs
     * collide, wrap around the end and are shifted back by removals; the table also grows on the way. Removals
     * come in runs and the size is checked now and then, so queued removals pile up before they are applied.
     */
    @Test
    void agreesWithAHashMapUnderRandomAddsAndRemoves() {
        int numBlocks = 64;
        Random random = new Random(42);
        for (int round = 0; round < 200; round++) {
            PrefixCacheIndex index = new PrefixCacheIndex(numBlocks);
            Map<BlockHash, Integer> byHash = new HashMap<>();
            Map<Integer, BlockHash> byBlock = new HashMap<>();
            for (int op = 0; op < 2_000; op++) {
                int block = random.nextInt(numBlocks);
                if (random.nextInt(3) == 0 || (op % 50 < 10)) {
                    index.remove(block);
                    BlockHash gone = byBlock.remove(block);
                    if (gone != null) {
                        byHash.remove(gone);
                    }
                } else if (!byBlock.containsKey(block)) {
                    BlockHash hash = new BlockHash(random.nextInt(4), random.nextInt(40));
                    boolean added = !byHash.containsKey(hash);
                    assertEquals(added, index.add(block, hash));
                    if (added) {
                        byHash.put(hash, block);
                        byBlock.put(block, hash);
                    }
                }
                if (random.nextInt(8) == 0) {
                    assertEquals(byHash.size(), index.size());
                }
            }
            assertEquals(byHash.size(), index.size());
            for (int b = 0; b < numBlocks; b++) {
                assertEquals(byBlock.get(b), index.hashOf(b));
            }
            for (int hi = 0; hi < 4; hi++) {
                for (int lo = 0; lo < 40; lo++) {
                    BlockHash hash = new BlockHash(hi, lo);
                    assertEquals(byHash.getOrDefault(hash, -1), index.blockOf(hash), hash.toString());
                }
            }
        }
    }
}
