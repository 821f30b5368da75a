package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** A replica's prefix-cache updates, and the gateway's prompt hashes, against what the cache really holds. */
class PrefixCacheUpdateTest {
    private static final int BS = 16;
    private static final CacheScope SCOPE = new CacheScope(7, "tenant-a");

    private static int[] tokens(int from, int count) {
        return IntStream.range(from, from + count).toArray();
    }

    private static void runPrompt(KvCacheManager kv, String id, CacheScope scope, int[] prompt) {
        RequestKey key = new RequestKey(id, scope);
        ComputedPrefix prefix = kv.findCachedPrefix(key, prompt);
        assertTrue(kv.allocateSlots(key, prefix, prompt.length - prefix.numTokens()).isGranted());
        kv.cacheFullBlocks(id, prompt, prompt.length);
    }

    private static Set<BlockHash> set(long[] pairs) {
        Set<BlockHash> out = new HashSet<>();
        for (int i = 0; i < PrefixCacheUpdate.count(pairs); i++) {
            assertTrue(out.add(PrefixCacheUpdate.at(pairs, i)), "hash listed twice");
        }
        return out;
    }

    /** What the pool holds, read block by block. */
    private static Set<BlockHash> cachedNow(KvCacheManager kv) {
        Set<BlockHash> out = new HashSet<>();
        for (int b = 0; b < kv.numTotalBlocks(); b++) {
            kv.pool().hashOf(b).ifPresent(out::add);
        }
        return out;
    }

    @Test
    void promptHashesAreWhatTheCacheStoresForTheSamePrompt() {
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(64, BS, true));
        int[] prompt = tokens(100, 100); // 6 full blocks and 4 tokens
        runPrompt(kv, "a", SCOPE, prompt);
        long[] gateway = PromptBlockHashes.of(new BlockHasher(), prompt, prompt.length, BS, SCOPE);
        assertEquals(6, PrefixCacheUpdate.count(gateway));
        assertEquals(cachedNow(kv), set(gateway));
        var first = assertInstanceOf(PrefixCacheUpdate.Snapshot.class, kv.drainPrefixCacheUpdate(false));
        assertEquals(set(gateway), set(first.held()));

        // the lookup hashes are those findCachedPrefix hits, in order: all but the prompt's last token
        int[] again = tokens(100, 97);
        long[] lookup = PromptBlockHashes.forLookup(new BlockHasher(), again, BS, SCOPE);
        ComputedPrefix hit = kv.findCachedPrefix(new RequestKey("b", SCOPE), again);
        assertEquals(hit.blocks().size(), PrefixCacheUpdate.count(lookup));
        for (int i = 0; i < hit.blocks().size(); i++) {
            assertEquals(hit.blocks().get(i).hash(), PrefixCacheUpdate.at(lookup, i));
        }
        assertEquals(5, PromptBlockHashes.lookupBlocks(96, BS)); // 95 tokens: 5 whole blocks
        assertEquals(6, PromptBlockHashes.lookupBlocks(97, BS));
        assertEquals(0, PromptBlockHashes.lookupBlocks(1, BS));
    }

    @Test
    void promptHashesDependOnAdapterAndSalt() {
        int[] prompt = tokens(0, 64);
        BlockHasher h = new BlockHasher();
        long[] scoped = PromptBlockHashes.of(h, prompt, 64, BS, SCOPE);
        long[] otherSalt = PromptBlockHashes.of(h, prompt, 64, BS, new CacheScope(7, "tenant-b"));
        long[] otherAdapter = PromptBlockHashes.of(h, prompt, 64, BS, new CacheScope(8, "tenant-a"));
        assertTrue(set(scoped).stream().noneMatch(set(otherSalt)::contains));
        assertTrue(set(scoped).stream().noneMatch(set(otherAdapter)::contains));
    }

    @Test
    void deltaListsWhatWasStoredAndEvictedSinceTheLastDrain() {
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(4, BS, true));
        int[] p1 = tokens(0, 2 * BS + 1);
        runPrompt(kv, "p1", CacheScope.BASE, p1);
        assertInstanceOf(PrefixCacheUpdate.Snapshot.class, kv.drainPrefixCacheUpdate(false));
        assertEquals(new PrefixCacheUpdate.Delta(new long[0], new long[0]), kv.drainPrefixCacheUpdate(false));

        kv.free("p1"); // cached blocks stay cached while free
        int[] p2 = tokens(1000, 3 * BS + 1);
        runPrompt(kv, "p2", CacheScope.BASE, p2); // all 4 blocks: both of p1's cached blocks are evicted
        var delta = assertInstanceOf(PrefixCacheUpdate.Delta.class, kv.drainPrefixCacheUpdate(false));
        long[] h1 = PromptBlockHashes.of(new BlockHasher(), p1, p1.length, BS, CacheScope.BASE);
        long[] h2 = PromptBlockHashes.of(new BlockHasher(), p2, p2.length, BS, CacheScope.BASE);
        assertEquals(set(h2), set(delta.stored()));
        Set<BlockHash> evicted = new HashSet<>(set(h1));
        evicted.removeAll(cachedNow(kv));
        assertEquals(2, evicted.size());
        assertEquals(evicted, set(delta.removed()));
    }

    @Test
    void storedThenEvictedWithinOneIntervalCancelsOut() {
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(2, BS, true));
        kv.drainPrefixCacheUpdate(false);
        runPrompt(kv, "a", CacheScope.BASE, tokens(0, BS + 1)); // caches one block
        kv.free("a");
        runPrompt(kv, "b", CacheScope.BASE, tokens(500, BS + 1)); // takes both blocks: a's is evicted
        kv.free("b");
        var delta = assertInstanceOf(PrefixCacheUpdate.Delta.class, kv.drainPrefixCacheUpdate(false));
        assertEquals(cachedNow(kv), set(delta.stored()));
        long[] a = PromptBlockHashes.of(new BlockHasher(), tokens(0, BS + 1), BS + 1, BS, CacheScope.BASE);
        assertEquals(set(a), set(delta.removed()), "a receiver that never had it removes nothing");
        assertTrue(set(delta.stored()).stream().noneMatch(set(delta.removed())::contains));
    }

    @Test
    void snapshotOnDemandAndAfterResetOrOverflow() {
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(4, BS, true));
        kv.drainPrefixCacheUpdate(false);
        runPrompt(kv, "a", CacheScope.BASE, tokens(0, 3 * BS));
        var asked = assertInstanceOf(PrefixCacheUpdate.Snapshot.class, kv.drainPrefixCacheUpdate(true));
        assertEquals(cachedNow(kv), set(asked.held()));
        assertEquals(new PrefixCacheUpdate.Delta(new long[0], new long[0]), kv.drainPrefixCacheUpdate(false));

        kv.free("a");
        assertTrue(kv.resetPrefixCache());
        assertEquals(new PrefixCacheUpdate.Snapshot(new long[0]), kv.drainPrefixCacheUpdate(false));

        // more changes than the record keeps: it is dropped, the next update is the whole cache
        for (int i = 0; i < PrefixCacheEvents.MIN_CAPACITY; i++) {
            runPrompt(kv, "r" + i, CacheScope.BASE, tokens(10_000 * i, 3 * BS));
            kv.free("r" + i);
        }
        var overflowed = assertInstanceOf(PrefixCacheUpdate.Snapshot.class, kv.drainPrefixCacheUpdate(false));
        assertEquals(cachedNow(kv), set(overflowed.held()));
        int last = PrefixCacheEvents.MIN_CAPACITY - 1;
        assertTrue(set(overflowed.held()).containsAll(set(PromptBlockHashes.of(new BlockHasher(),
                tokens(10_000 * last, 3 * BS), 3 * BS, BS, CacheScope.BASE))));
    }

    /** A receiver applying every update in turn always ends with exactly the set the cache holds. */
    @Test
    void aReceiverApplyingTheUpdatesMirrorsTheCache() {
        Random random = new Random(13);
        KvCacheManager kv = new KvCacheManager(new KvCacheConfig(48, 4, true));
        Set<BlockHash> mirror = new HashSet<>();
        List<String> live = new ArrayList<>();
        int snapshots = 0;
        int deltas = 0;
        for (int step = 0; step < 3000; step++) {
            if (!live.isEmpty() && (live.size() > 6 || random.nextInt(3) == 0)) {
                kv.free(live.remove(random.nextInt(live.size())));
            } else {
                // prompts share prefixes: a few stems, random tails
                int stem = random.nextInt(4);
                int[] prompt = IntStream.range(0, 2 + random.nextInt(30))
                        .map(i -> i < 12 ? stem * 100 + i : random.nextInt(5)).toArray();
                String id = "q" + step;
                RequestKey key = new RequestKey(id, random.nextInt(5) == 0 ? SCOPE : CacheScope.BASE);
                ComputedPrefix prefix = kv.findCachedPrefix(key, prompt);
                if (kv.allocateSlots(key, prefix, prompt.length - prefix.numTokens()).isGranted()) {
                    kv.cacheFullBlocks(id, prompt, prompt.length);
                    live.add(id);
                }
            }
            if (random.nextInt(7) == 0) {
                switch (kv.drainPrefixCacheUpdate(random.nextInt(50) == 0)) {
                    case PrefixCacheUpdate.Snapshot s -> {
                        mirror.clear();
                        mirror.addAll(set(s.held()));
                        snapshots++;
                    }
                    case PrefixCacheUpdate.Delta d -> {
                        mirror.removeAll(set(d.removed()));
                        mirror.addAll(set(d.stored()));
                        deltas++;
                    }
                }
                assertEquals(cachedNow(kv), mirror, "after step " + step);
            }
        }
        assertTrue(deltas > 300 && snapshots >= 2, deltas + " deltas, " + snapshots + " snapshots");
        kv.checkInvariants();
    }

    @Test
    void pairArraysMustBeEven() {
        assertTrue(!new PrefixCacheUpdate.Snapshot(new long[3]).isWellFormed());
        assertTrue(!new PrefixCacheUpdate.Delta(new long[2], new long[1]).isWellFormed());
        assertTrue(new PrefixCacheUpdate.Delta(new long[2], new long[4]).isWellFormed());
        assertArrayEquals(new long[0], PromptBlockHashes.of(new BlockHasher(), tokens(0, 15), 15, BS, SCOPE));
    }
}
