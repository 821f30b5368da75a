package io.kvass.kvpaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random schedules against a tiny pool, checked after every operation two ways: the manager's own
 * invariants, and a simulated backend memory. Every computed slot holds a value that stands for
 * its K/V (a function of scope and the whole token prefix up to it, as attention makes it), so a
 * wrong prefix hit, a missed copy-on-write or a block reused while in use shows up as a wrong value.
 */
class KvCacheManagerPropertyTest {
    private static final int BLOCK_SIZE = 4;
    private static final int SEEDS = 400;
    private static final int OPS = 250;
    private static final int MAX_TOKENS = 40;
    private static final CacheScope[] SCOPES = {CacheScope.BASE, new CacheScope(1, ""), new CacheScope(0, "t")};
    private static final long GARBAGE = Long.MIN_VALUE;

    /** A request as the scheduler sees it. */
    private static final class Seq {
        final String id;
        final int scope;
        final int promptLen;
        int[] tokens;
        int numComputed;

        Seq(String id, int scope, int[] tokens) {
            this.id = id;
            this.scope = scope;
            this.promptLen = tokens.length;
            this.tokens = tokens;
        }
    }

    private Random rnd;
    private KvCacheManager kv;
    private long[][] memory; // [numBlocks][BLOCK_SIZE]
    private Map<String, Seq> live;
    private int[][] stems;
    private int nextId;
    // How often each interesting path ran, over all seeds: a generator that never reaches one proves nothing.
    private long hitCount, copyCount, replacedCount, noSpaceCount, evictionCount, resetCount;

    @Test
    void randomSchedulesKeepInvariantsAndContent() {
        for (long seed = 0; seed < SEEDS; seed++) {
            try {
                run(seed);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + ": " + e.getMessage(), e);
            }
        }
        String coverage = "hits=%d copies=%d replacedWithoutCopy=%d noSpace=%d evictions=%d resets=%d"
                .formatted(hitCount, copyCount, replacedCount, noSpaceCount, evictionCount, resetCount);
        System.out.println("KvCacheManagerPropertyTest coverage: " + coverage);
        for (long count : new long[] {hitCount, copyCount, replacedCount, noSpaceCount, evictionCount, resetCount}) {
            assertTrue(count > 50, "generator misses a path: " + coverage);
        }
    }

    private void run(long seed) {
        rnd = new Random(seed);
        int numBlocks = 3 + rnd.nextInt(14);
        kv = new KvCacheManager(new KvCacheConfig(numBlocks, BLOCK_SIZE, rnd.nextInt(8) != 0));
        memory = new long[numBlocks][BLOCK_SIZE];
        for (long[] block : memory) {
            Arrays.fill(block, GARBAGE);
        }
        live = new LinkedHashMap<>();
        stems = new int[3][];
        for (int i = 0; i < stems.length; i++) {
            stems[i] = randomTokens(12);
        }
        nextId = 0;
        for (int op = 0; op < OPS; op++) {
            int dice = rnd.nextInt(20);
            if (dice < 5) {
                admit();
            } else if (dice < 14) {
                pick().ifPresent(this::step);
            } else if (dice < 16) {
                pick().ifPresent(this::fork);
            } else if (dice < 19) {
                pick().ifPresent(s -> finish(s));
            } else if (kv.resetPrefixCache()) {
                assertTrue(live.isEmpty());
                resetCount++;
            } else {
                assertFalse(live.isEmpty());
            }
            kv.checkInvariants();
            checkContents();
        }
        for (Seq s : List.copyOf(live.values())) {
            finish(s);
            kv.checkInvariants();
        }
        assertEquals(numBlocks, kv.numFreeBlocks());
        assertEquals(0.0, kv.usage());
    }

    private void admit() {
        int[] stem = stems[rnd.nextInt(stems.length)];
        int[] prompt = concat(Arrays.copyOf(stem, rnd.nextInt(stem.length + 1)), randomTokens(rnd.nextInt(7)));
        if (prompt.length == 0) {
            prompt = randomTokens(1);
        }
        Seq s = new Seq("r" + nextId++, rnd.nextInt(SCOPES.length), prompt);
        RequestKey key = new RequestKey(s.id, SCOPES[s.scope]);
        ComputedPrefix prefix = kv.findCachedPrefix(key, prompt);
        assertTrue(prefix.numTokens() < prompt.length && prefix.numTokens() % BLOCK_SIZE == 0, "prefix " + prefix);
        for (int i = 0; i < prefix.blocks().size(); i++) {
            for (int slot = 0; slot < BLOCK_SIZE; slot++) {
                int pos = i * BLOCK_SIZE + slot;
                assertEquals(kvValue(s, pos), memory[prefix.blocks().get(i).blockId()][slot], "hit content at " + pos);
            }
        }
        if (prefix.numTokens() > 0) {
            hitCount++;
        }
        int numNew = chunk(prompt.length - prefix.numTokens());
        Snapshot before = new Snapshot();
        Allocation a = kv.allocateSlots(key, prefix, numNew);
        if (a instanceof Allocation.Granted) {
            countEvictions(before);
            s.numComputed = prefix.numTokens();
            live.put(s.id, s);
            compute(s, numNew);
        } else {
            assertEquals(before, new Snapshot(), "refused admission changed state");
            assertFalse(kv.hasRequest(s.id));
            noSpaceCount++;
        }
    }

    private void step(Seq s) {
        int remainingPrompt = s.promptLen - s.numComputed;
        if (remainingPrompt <= 0 && rnd.nextInt(3) == 0) {
            s.tokens = concat(s.tokens, randomTokens(1 + rnd.nextInt(6))); // speculative draft tokens
        }
        int numNew = remainingPrompt > 0 ? chunk(remainingPrompt) : s.tokens.length - s.numComputed;
        int[] tableBefore = kv.blockTable(s.id);
        Snapshot before = new Snapshot();
        switch (kv.allocateSlots(s.id, s.numComputed, numNew)) {
            case Allocation.Granted(int firstChanged, List<BlockCopy> copies) -> {
                int[] table = kv.blockTable(s.id);
                for (int i = 0; i < Math.min(firstChanged, tableBefore.length); i++) {
                    assertEquals(tableBefore[i], table[i], "entry before firstChangedIndex changed");
                }
                countEvictions(before);
                for (int i = s.numComputed / BLOCK_SIZE; i * BLOCK_SIZE < s.numComputed + numNew; i++) {
                    assertEquals(1, kv.pool().refCount(table[i]), "step would write into shared block #" + i);
                }
                int replaced = 0;
                for (int i = firstChanged; i < tableBefore.length; i++) {
                    replaced += tableBefore[i] != table[i] ? 1 : 0;
                }
                assertTrue(copies.size() <= replaced && copies.size() <= 1, "copies " + copies);
                copyCount += copies.size();
                replacedCount += replaced - copies.size();
                for (BlockCopy copy : copies) {
                    memory[copy.dst()] = memory[copy.src()].clone(); // the backend runs copies first
                }
                compute(s, numNew);
            }
            case Allocation.NoSpace(int needed, int free) -> {
                assertTrue(needed > free);
                assertEquals(before, new Snapshot(), "refused growth changed state");
                noSpaceCount++;
                finish(pick().orElseThrow()); // preempt someone (maybe s itself)
            }
        }
    }

    /** A granted allocation took cached free blocks for new content iff the cache shrank. */
    private void countEvictions(Snapshot before) {
        evictionCount += Math.max(0, before.cachedBlocks - kv.pool().numCachedBlocks());
    }

    /**
     * The step ran: writes the new tokens' K/V through the block table. Sometimes fewer than
     * allocated (a chunk cut short, rejected draft tokens), which leaves allocated blocks beyond the
     * computed tokens for a fork to share.
     */
    private void compute(Seq s, int numNew) {
        int computedNow = rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(numNew) : numNew;
        int[] table = kv.blockTable(s.id);
        for (int pos = s.numComputed; pos < s.numComputed + computedNow; pos++) {
            memory[table[pos / BLOCK_SIZE]][pos % BLOCK_SIZE] = kvValue(s, pos);
        }
        s.numComputed += computedNow;
        kv.cacheFullBlocks(s.id, s.tokens, s.numComputed);
        if (s.numComputed >= s.promptLen) {
            // sampled token; a rejected draft tail is dropped (its slots stay allocated, holding garbage)
            s.tokens = Arrays.copyOf(s.tokens, s.numComputed + 1);
            s.tokens[s.numComputed] = rnd.nextInt(3);
        }
        if (s.tokens.length > MAX_TOKENS) {
            finish(s);
        }
    }

    private void fork(Seq parent) {
        Seq child = new Seq("r" + nextId++, parent.scope, parent.tokens.clone());
        child.numComputed = parent.numComputed;
        if (child.numComputed >= parent.promptLen) {
            child.tokens[child.tokens.length - 1] = rnd.nextInt(3); // a different sample
        }
        kv.fork(parent.id, child.id);
        assertArrayEquals(kv.blockTable(parent.id), kv.blockTable(child.id));
        live.put(child.id, child);
    }

    private void finish(Seq s) {
        assertTrue(kv.free(s.id));
        live.remove(s.id);
    }

    private void checkContents() {
        for (Seq s : live.values()) {
            int[] table = kv.blockTable(s.id);
            assertTrue(table.length * BLOCK_SIZE >= s.numComputed, s.id + " lost blocks");
            for (int pos = 0; pos < s.numComputed; pos++) {
                long actual = memory[table[pos / BLOCK_SIZE]][pos % BLOCK_SIZE];
                if (actual != kvValue(s, pos)) {
                    fail(s.id + " token " + pos + " of " + s.numComputed + ": K/V overwritten or never copied");
                }
            }
        }
    }

    /** Stands for the K/V at {@code pos}: depends on the scope and on every token up to it. */
    private static long kvValue(Seq s, int pos) {
        long h = 0x9E3779B97F4A7C15L * (s.scope + 1);
        for (int i = 0; i <= pos; i++) {
            h = (h ^ s.tokens[i]) * 0xBF58476D1CE4E5B9L + i;
        }
        return h == GARBAGE ? 0 : h;
    }

    private int chunk(int remaining) {
        return Math.min(remaining, 1 + rnd.nextInt(9));
    }

    private java.util.Optional<Seq> pick() {
        if (live.isEmpty()) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(new ArrayList<>(live.values()).get(rnd.nextInt(live.size())));
    }

    private int[] randomTokens(int n) {
        return rnd.ints(n, 0, 3).toArray();
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Everything a refused allocation must leave as it was. */
    private final class Snapshot {
        final Map<String, List<Integer>> tables = new LinkedHashMap<>();
        final List<Integer> freeQueue;
        final List<Integer> refs = new ArrayList<>();
        final int cachedBlocks;
        final PrefixCacheStats stats;

        Snapshot() {
            live.keySet().forEach(id -> tables.put(id, Arrays.stream(kv.blockTable(id)).boxed().toList()));
            freeQueue = Arrays.stream(kv.pool().freeQueueOrder()).boxed().toList();
            for (int b = 0; b < kv.numTotalBlocks(); b++) {
                refs.add(kv.pool().refCount(b));
            }
            cachedBlocks = kv.pool().numCachedBlocks();
            stats = kv.prefixCacheStats();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Snapshot other && tables.equals(other.tables) && freeQueue.equals(other.freeQueue)
                    && refs.equals(other.refs) && cachedBlocks == other.cachedBlocks && stats.equals(other.stats);
        }

        @Override
        public int hashCode() {
            return tables.hashCode();
        }

        @Override
        public String toString() {
            return "tables=" + tables + " free=" + freeQueue + " refs=" + refs;
        }
    }
}
