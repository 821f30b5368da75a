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

    /**
     * Random adds and removes against a HashMap, with few distinct hashes and a small table, so probe runs
     * collide, wrap around the end and are shifted back by removals; the table also grows on the way.
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
                if (random.nextInt(3) == 0) {
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
                assertEquals(byHash.size(), index.size());
            }
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
