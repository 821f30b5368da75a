package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import org.junit.jupiter.api.Test;

class BlockHasherTest {
    private final BlockHasher hasher = new BlockHasher();
    private final int[] block = {11, 12, 13, 14};

    private BlockHash hash(BlockHash parent, CacheScope scope, int[] tokens) {
        return hasher.hash(parent, scope, tokens, 0, tokens.length);
    }

    @Test
    void isDeterministicAndReadsOnlyTheGivenSlice() {
        BlockHash h = hash(BlockHash.ROOT, CacheScope.BASE, block);
        assertEquals(h, new BlockHasher().hash(BlockHash.ROOT, CacheScope.BASE, new int[] {9, 11, 12, 13, 14, 9}, 1, 4));
        assertNotEquals(BlockHash.ROOT, h);
    }

    @Test
    void sameTokensUnderDifferentPrefixesHashDifferently() {
        BlockHash prefixA = hash(BlockHash.ROOT, CacheScope.BASE, new int[] {1, 2, 3, 4});
        BlockHash prefixB = hash(BlockHash.ROOT, CacheScope.BASE, new int[] {1, 2, 3, 5});
        assertNotEquals(hash(prefixA, CacheScope.BASE, block), hash(prefixB, CacheScope.BASE, block));
        assertNotEquals(hash(BlockHash.ROOT, CacheScope.BASE, block), hash(prefixA, CacheScope.BASE, block));
    }

    @Test
    void dependsOnTokensAdapterAndSalt() {
        BlockHash base = hash(BlockHash.ROOT, CacheScope.BASE, block);
        assertNotEquals(base, hash(BlockHash.ROOT, CacheScope.BASE, new int[] {11, 12, 13, 15}));
        assertNotEquals(base, hash(BlockHash.ROOT, CacheScope.BASE, new int[] {12, 11, 13, 14}));
        assertNotEquals(base, hash(BlockHash.ROOT, new CacheScope(7, ""), block));
        assertNotEquals(base, hash(BlockHash.ROOT, new CacheScope(0, "tenant-a"), block));
        assertNotEquals(hash(BlockHash.ROOT, new CacheScope(0, "tenant-a"), block),
                hash(BlockHash.ROOT, new CacheScope(0, "tenant-b"), block));
        assertEquals(base, hash(BlockHash.ROOT, new CacheScope(CacheScope.BASE_MODEL, ""), block));
    }

    @Test
    void encodingIsUnambiguousAcrossFieldBoundaries() {
        // Without length prefixes these would feed SHA-256 neighbouring bytes that could coincide.
        assertNotEquals(hash(BlockHash.ROOT, CacheScope.BASE, new int[] {1, 2}),
                hash(BlockHash.ROOT, CacheScope.BASE, new int[] {1, 2, 0}));
        assertNotEquals(hash(BlockHash.ROOT, new CacheScope(0, "a"), new int[] {}),
                hash(BlockHash.ROOT, new CacheScope(0, ""), new int[] {'a'}));
    }

    @Test
    void growsItsBufferForLargeBlocks() {
        int[] big = new int[1000];
        big[999] = 1;
        assertNotEquals(hash(BlockHash.ROOT, CacheScope.BASE, big), hash(BlockHash.ROOT, CacheScope.BASE, new int[1000]));
    }
}
