package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class KvCacheManagerTest {
    private static final int BS = 4;
    private static final CacheScope TENANT_A = new CacheScope(0, "tenant-a");
    private static final CacheScope ADAPTER_7 = new CacheScope(7, "");

    private KvCacheManager kv = manager(8, true);

    @AfterEach
    void consistent() {
        kv.checkInvariants();
    }

    private static KvCacheManager manager(int numBlocks, boolean caching) {
        return new KvCacheManager(new KvCacheConfig(numBlocks, BS, caching));
    }

    private static int[] tokens(int from, int count) {
        return IntStream.range(from, from + count).toArray();
    }

    private static RequestKey key(String id, CacheScope scope) {
        return new RequestKey(id, scope);
    }

    /** Admits the request, computes its whole prompt and caches its full blocks; returns the prefix it hit. */
    private ComputedPrefix runPrompt(RequestKey key, int[] prompt) {
        ComputedPrefix prefix = kv.findCachedPrefix(key, prompt);
        assertTrue(kv.allocateSlots(key, prefix, prompt.length - prefix.numTokens()).isGranted());
        kv.cacheFullBlocks(key.requestId(), prompt, prompt.length);
        return prefix;
    }

    @Test
    void allocatesWholeBlocksForTheTokens() {
        Allocation a = kv.allocateSlots(key("a", CacheScope.BASE), ComputedPrefix.none(CacheScope.BASE), 9);
        assertEquals(new Allocation.Granted(0, List.of()), a);
        assertArrayEquals(new int[] {0, 1, 2}, kv.blockTable("a"));
        assertEquals(3, kv.numBlocks("a"));
        assertEquals(5, kv.numFreeBlocks());
        assertEquals(3.0 / 8, kv.usage(), 1e-12);
    }

    @Test
    void decodingTakesANewBlockOnlyAtABlockBoundary() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 7));
        assertEquals(new Allocation.Granted(2, List.of()), kv.allocateSlots("a", 7, 1));
        assertEquals(2, kv.numBlocks("a"));
        assertEquals(new Allocation.Granted(2, List.of()), kv.allocateSlots("a", 8, 1));
        assertEquals(3, kv.numBlocks("a"));
    }

    @Test
    void secondRequestWithTheSamePrefixAndScopeHits() {
        runPrompt(key("a", TENANT_A), tokens(0, 10));
        int[] tableA = kv.blockTable("a");
        int[] promptB = {0, 1, 2, 3, 4, 5, 6, 7, 99, 98};
        ComputedPrefix hit = runPrompt(key("b", TENANT_A), promptB);
        assertEquals(8, hit.numTokens());
        assertEquals(10, hit.queriedTokens());
        int[] tableB = kv.blockTable("b");
        assertEquals(tableA[0], tableB[0]);
        assertEquals(tableA[1], tableB[1]);
        assertNotEquals(tableA[2], tableB[2]);
        assertEquals(2, kv.pool().refCount(tableA[0]));
        assertEquals(new PrefixCacheStats(2, 20, 8), kv.prefixCacheStats());
    }

    @Test
    void freedRequestsStayFindableUntilEvicted() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 12));
        int[] tableA = kv.blockTable("a");
        assertTrue(kv.free("a"));
        assertFalse(kv.free("a"), "freeing twice is harmless");
        assertEquals(8, kv.numFreeBlocks());
        ComputedPrefix hit = kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 13));
        assertEquals(12, hit.numTokens());
        assertTrue(kv.allocateSlots(key("b", CacheScope.BASE), hit, 1).isGranted());
        assertArrayEquals(new int[] {tableA[0], tableA[1], tableA[2]}, IntStream.of(kv.blockTable("b")).limit(3).toArray());
        assertEquals(4, kv.numFreeBlocks(), "3 revived from the free queue + 1 fresh");
    }

    @Test
    void differentAdapterOrSaltNeverHits() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 12));
        runPrompt(key("b", TENANT_A), tokens(0, 12));
        assertEquals(0, kv.findCachedPrefix(key("c", ADAPTER_7), tokens(0, 13)).numTokens());
        assertEquals(0, kv.findCachedPrefix(key("c", new CacheScope(0, "tenant-b")), tokens(0, 13)).numTokens());
        assertEquals(12, kv.findCachedPrefix(key("c", TENANT_A), tokens(0, 13)).numTokens());
        assertEquals(12, kv.findCachedPrefix(key("c", CacheScope.BASE), tokens(0, 13)).numTokens());
        assertEquals(0, IntStream.of(kv.blockTable("a")).filter(b -> IntStream.of(kv.blockTable("b")).anyMatch(x -> x == b)).count(),
                "same tokens, different salt: no shared blocks");
    }

    @Test
    void partialLastBlockIsNeverCached() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 6));
        assertEquals(1, kv.pool().numCachedBlocks());
        assertEquals(4, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 20)).numTokens());
    }

    @Test
    void theLastPromptTokenIsAlwaysRecomputed() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 8));
        assertEquals(2, kv.pool().numCachedBlocks());
        assertEquals(4, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 8)).numTokens());
        assertEquals(8, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 9)).numTokens());
        assertEquals(0, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 4)).numTokens());
        assertEquals(0, kv.findCachedPrefix(key("b", CacheScope.BASE), new int[0]).numTokens());
    }

    @Test
    void decodedTokensFillBlocksThatBecomeCachedIncrementally() {
        int[] all = tokens(100, 12);
        runPrompt(key("a", CacheScope.BASE), IntStream.of(all).limit(5).toArray());
        for (int computed = 5; computed < 12; computed++) {
            assertTrue(kv.allocateSlots("a", computed, 1).isGranted());
            kv.cacheFullBlocks("a", all, computed + 1);
        }
        kv.cacheFullBlocks("a", all, 12); // again: nothing new
        assertEquals(3, kv.pool().numCachedBlocks());
        assertEquals(12, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(100, 13)).numTokens());
    }

    /**
     * A batch caches what one call per request would, in the same order: here two requests fill blocks of the same
     * content, and the first one added keeps the cached copy, as it would if cached first.
     */
    @Test
    void aBatchCachesWhatOneCallPerRequestWould() {
        int[] shared = tokens(0, 9);
        int[] other = tokens(50, 9);
        kv = manager(9, true);
        KvCacheManager oneByOne = manager(9, true);
        for (KvCacheManager m : List.of(kv, oneByOne)) {
            for (String id : List.of("a", "b", "c")) {
                assertTrue(m.allocateSlots(key(id, CacheScope.BASE), ComputedPrefix.none(CacheScope.BASE), 9).isGranted());
            }
            m.cacheFullBlocks("c", other, 4); // c's first block is cached already: the batch hashes on from it
        }
        FullBlockBatch batch = new FullBlockBatch(3);
        batch.add(kv.handle("b"), shared, 8);
        batch.add(kv.handle("a"), shared, 8);
        batch.add(kv.handle("c"), other, 9);
        assertEquals(0, kv.findCachedPrefix(key("x", CacheScope.BASE), shared).numTokens(), "nothing before the call");
        kv.cacheFullBlocks(batch);
        oneByOne.cacheFullBlocks("b", shared, 8);
        oneByOne.cacheFullBlocks("a", shared, 8);
        oneByOne.cacheFullBlocks("c", other, 9);
        for (KvCacheManager m : List.of(kv, oneByOne)) {
            assertEquals(8, m.findCachedPrefix(key("x", CacheScope.BASE), shared).numTokens());
            assertEquals(8, m.findCachedPrefix(key("x", CacheScope.BASE), other).numTokens());
            assertEquals(m.blockTable("b")[0], m.pool().cachedBlock(
                    m.findCachedPrefix(key("x", CacheScope.BASE), shared).blocks().getFirst().hash()).getAsInt(),
                    "the first request added keeps the cached copy");
            assertEquals(4, m.pool().numCachedBlocks());
        }
        for (int b = 0; b < 9; b++) {
            assertEquals(oneByOne.pool().hashOf(b), kv.pool().hashOf(b), "block " + b);
        }
        oneByOne.checkInvariants();
    }

    @Test
    void refusesARequestTwiceInOneBatch() {
        assertTrue(kv.allocateSlots(key("a", CacheScope.BASE), ComputedPrefix.none(CacheScope.BASE), 9).isGranted());
        FullBlockBatch batch = new FullBlockBatch(2);
        batch.add(kv.handle("a"), tokens(0, 9), 4);
        batch.add(kv.handle("a"), tokens(0, 9), 8);
        assertThrows(IllegalArgumentException.class, () -> kv.cacheFullBlocks(batch));
    }

    @Test
    void aBatchGrowsPastItsFirstCapacity() {
        kv = manager(40, true);
        FullBlockBatch batch = new FullBlockBatch(1);
        for (int r = 0; r < 20; r++) {
            RequestKey key = key("r" + r, CacheScope.BASE);
            assertTrue(kv.allocateSlots(key, ComputedPrefix.none(CacheScope.BASE), 5).isGranted());
            batch.add(kv.handle(key.requestId()), tokens(100 * r, 5), 5);
        }
        assertEquals(20, batch.size());
        kv.cacheFullBlocks(batch);
        assertEquals(20, kv.pool().numCachedBlocks());
        assertEquals(4, kv.findCachedPrefix(key("x", CacheScope.BASE), tokens(1900, 5)).numTokens());
    }

    @Test
    void admissionThatDoesNotFitChangesNothing() {
        kv = manager(4, true);
        runPrompt(key("a", CacheScope.BASE), tokens(0, 8));
        kv.free("a"); // 2 cached free blocks
        runPrompt(key("x", CacheScope.BASE), tokens(50, 5)); // takes the 2 uncached blocks
        assertEquals(2, kv.numFreeBlocks());
        ComputedPrefix hit = kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 9));
        assertEquals(8, hit.numTokens());
        // 2 revived + 1 fresh > 2 free
        assertEquals(new Allocation.NoSpace(3, 2), kv.allocateSlots(key("b", CacheScope.BASE), hit, 1));
        assertFalse(kv.hasRequest("b"));
        assertEquals(2, kv.numFreeBlocks());
        assertEquals(3, kv.pool().numCachedBlocks(), "a's two blocks and x's full one stay cached");
        assertEquals(new PrefixCacheStats(2, 13, 0), kv.prefixCacheStats(), "refused admissions are not counted");
        kv.free("x");
        assertTrue(kv.allocateSlots(key("b", CacheScope.BASE), kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 9)), 1).isGranted());
    }

    @Test
    void growthThatDoesNotFitChangesNothing() {
        kv = manager(3, true);
        runPrompt(key("a", CacheScope.BASE), tokens(0, 6));
        kv.fork("a", "b");
        assertEquals(1, kv.numFreeBlocks());
        // a needs a private copy of its shared partial block and one more block: 2 > 1
        assertEquals(new Allocation.NoSpace(2, 1), kv.allocateSlots("a", 6, 3));
        assertArrayEquals(kv.blockTable("b"), kv.blockTable("a"));
        assertEquals(1, kv.numFreeBlocks());
    }

    @Test
    void evictsLeastRecentlyUsedAndTheTailOfAFreedSequenceFirst() {
        kv = manager(3, true);
        runPrompt(key("a", CacheScope.BASE), tokens(0, 12));
        kv.cacheFullBlocks("a", tokens(0, 12), 12);
        assertEquals(3, kv.pool().numCachedBlocks());
        int[] tableA = kv.blockTable("a");
        kv.free("a");
        assertArrayEquals(new int[] {tableA[2], tableA[1], tableA[0]}, kv.pool().freeQueueOrder());
        runPrompt(key("x", CacheScope.BASE), tokens(50, 2));
        assertArrayEquals(new int[] {tableA[2]}, kv.blockTable("x"), "a's last block goes first");
        assertEquals(8, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 13)).numTokens());
        kv.free("x");
        runPrompt(key("y", CacheScope.BASE), tokens(60, 5));
        assertEquals(4, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 13)).numTokens(), "then the middle one");
    }

    @Test
    void forkSharesBlocksAndTheFirstWriterCopiesTheSharedPartialBlock() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 6));
        int[] parent = kv.blockTable("a");
        kv.fork("a", "b");
        assertArrayEquals(parent, kv.blockTable("b"));
        assertEquals(2, kv.pool().refCount(parent[0]));
        assertEquals(2, kv.pool().refCount(parent[1]));

        Allocation a = kv.allocateSlots("a", 6, 1);
        int copy = kv.blockTable("a")[1];
        assertEquals(new Allocation.Granted(1, List.of(new BlockCopy(parent[1], copy))), a);
        assertEquals(parent[0], kv.blockTable("a")[0], "full blocks stay shared");
        assertEquals(1, kv.pool().refCount(parent[1]));

        assertEquals(new Allocation.Granted(2, List.of()), kv.allocateSlots("b", 6, 1), "b now owns the original");
        assertArrayEquals(parent, kv.blockTable("b"));
        kv.free("a");
        kv.free("b");
        assertEquals(8, kv.numFreeBlocks());
    }

    @Test
    void forkAtABlockBoundaryNeedsNoCopy() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 8));
        kv.fork("a", "b");
        assertEquals(new Allocation.Granted(2, List.of()), kv.allocateSlots("a", 8, 1));
        assertEquals(new Allocation.Granted(2, List.of()), kv.allocateSlots("b", 8, 1));
        assertNotEquals(kv.blockTable("a")[2], kv.blockTable("b")[2]);
    }

    @Test
    void sharedBlockWithoutComputedTokensIsReplacedWithoutACopy() {
        RequestKey a = key("a", CacheScope.BASE);
        kv.allocateSlots(a, ComputedPrefix.none(CacheScope.BASE), 8); // only 4 turn out computed
        kv.fork("a", "b");
        int[] shared = kv.blockTable("a");
        assertEquals(new Allocation.Granted(1, List.of()), kv.allocateSlots("a", 4, 2));
        assertNotEquals(shared[1], kv.blockTable("a")[1]);
    }

    @Test
    void everySharedBlockTheStepWritesIsMadePrivate() {
        kv.allocateSlots(key("a", CacheScope.BASE), ComputedPrefix.none(CacheScope.BASE), 12); // only 2 turn out computed
        int[] shared = kv.blockTable("a");
        kv.fork("a", "b");
        Allocation a = kv.allocateSlots("a", 2, 10);
        int[] own = kv.blockTable("a");
        assertEquals(new Allocation.Granted(0, List.of(new BlockCopy(shared[0], own[0]))), a);
        for (int i = 0; i < 3; i++) {
            assertNotEquals(shared[i], own[i]);
            assertEquals(1, kv.pool().refCount(own[i]));
            assertEquals(1, kv.pool().refCount(shared[i]));
        }
        assertEquals(new Allocation.Granted(3, List.of()), kv.allocateSlots("b", 2, 10));
    }

    @Test
    void forkedChildrenDivergeIntoDifferentCachedBlocks() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 7));
        kv.fork("a", "b");
        int[] seqA = {0, 1, 2, 3, 4, 5, 6, 40};
        int[] seqB = {0, 1, 2, 3, 4, 5, 6, 41};
        kv.allocateSlots("a", 7, 1);
        kv.allocateSlots("b", 7, 1);
        kv.cacheFullBlocks("a", seqA, 8);
        kv.cacheFullBlocks("b", seqB, 8);
        assertEquals(3, kv.pool().numCachedBlocks());
        assertEquals(8, kv.findCachedPrefix(key("c", CacheScope.BASE), new int[] {0, 1, 2, 3, 4, 5, 6, 41, 9}).numTokens());
    }

    @Test
    void stalePrefixIsRejected() {
        kv = manager(2, true);
        runPrompt(key("a", CacheScope.BASE), tokens(0, 5));
        kv.free("a");
        ComputedPrefix hit = kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 5));
        assertEquals(4, hit.numTokens());
        runPrompt(key("x", CacheScope.BASE), tokens(50, 8)); // evicts a's block
        kv.free("x");
        assertThrows(IllegalStateException.class, () -> kv.allocateSlots(key("b", CacheScope.BASE), hit, 1));
    }

    @Test
    void rejectsMisuse() {
        RequestKey a = key("a", CacheScope.BASE);
        ComputedPrefix none = ComputedPrefix.none(CacheScope.BASE);
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots(a, ComputedPrefix.none(TENANT_A), 1));
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots(a, none, 0));
        kv.allocateSlots(a, none, 4);
        kv.cacheFullBlocks("a", tokens(0, 4), 4);
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots(a, none, 1), "already admitted");
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots("a", 3, 1), "would rewrite a cached block");
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots("a", 5, 1), "beyond its blocks");
        assertThrows(IllegalArgumentException.class, () -> kv.allocateSlots("zz", 0, 1));
        assertThrows(IllegalArgumentException.class, () -> kv.fork("a", "a"));
        assertThrows(IllegalArgumentException.class, () -> kv.blockTable("zz"));
        assertThrows(IllegalArgumentException.class, () -> kv.cacheFullBlocks("a", tokens(0, 4), 8));
    }

    @Test
    void withoutPrefixCachingNothingIsSharedOrCounted() {
        kv = manager(8, false);
        runPrompt(key("a", CacheScope.BASE), tokens(0, 12));
        assertEquals(0, kv.pool().numCachedBlocks());
        assertEquals(0, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 13)).numTokens());
        assertEquals(new PrefixCacheStats(0, 0, 0), kv.prefixCacheStats());
    }

    @Test
    void resetForgetsPrefixesOnceNothingRuns() {
        runPrompt(key("a", CacheScope.BASE), tokens(0, 8));
        assertFalse(kv.resetPrefixCache());
        kv.free("a");
        assertTrue(kv.resetPrefixCache());
        assertEquals(0, kv.findCachedPrefix(key("b", CacheScope.BASE), tokens(0, 9)).numTokens());
    }

    @Test
    void allocationResultsAreValues() {
        assertInstanceOf(Allocation.NoSpace.class, manager(1, true)
                .allocateSlots(key("a", CacheScope.BASE), ComputedPrefix.none(CacheScope.BASE), 5));
        assertThrows(IllegalArgumentException.class, () -> new BlockCopy(1, 1));
    }
}
