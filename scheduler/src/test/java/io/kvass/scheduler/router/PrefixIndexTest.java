package io.kvass.scheduler.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PrefixIndexTest {

    private static long[] chain(long... ids) {
        long[] pairs = new long[2 * ids.length];
        for (int i = 0; i < ids.length; i++) {
            pairs[2 * i] = ids[i];
            pairs[2 * i + 1] = ~ids[i];
        }
        return pairs;
    }

    private static void addAll(PrefixIndex index, int replica, long... ids) {
        for (long id : ids) {
            index.add(replica, id, ~id);
        }
    }

    @Test
    void matchesLeadingBlocksPerReplicaAndStopsAtTheFirstMiss() {
        PrefixIndex index = new PrefixIndex();
        addAll(index, 0, 1, 2, 3, 4);
        addAll(index, 1, 1, 2);
        addAll(index, 2, 2, 3, 4); // no block 0: nothing leading
        addAll(index, 3, 1, 3, 4); // a hole at block 1
        int[] matched = new int[5];
        index.matchLeading(chain(1, 2, 3, 4), matched, new long[1]);
        assertArrayEquals(new int[] {4, 2, 0, 1, 0}, matched);
        index.matchLeading(chain(9, 2), matched, new long[1]);
        assertArrayEquals(new int[5], matched);
        index.matchLeading(new long[0], matched, new long[1]);
        assertArrayEquals(new int[5], matched);
    }

    @Test
    void removeAndClearForgetOnlyThatReplica() {
        PrefixIndex index = new PrefixIndex();
        addAll(index, 0, 1, 2, 3);
        addAll(index, 1, 1, 2, 3);
        index.remove(0, 2, ~2L);
        assertFalse(index.holds(0, 2, ~2L));
        assertTrue(index.holds(1, 2, ~2L));
        assertEquals(3, index.size());
        index.clear(1);
        assertFalse(index.holds(1, 1, ~1L));
        assertTrue(index.holds(0, 1, ~1L));
        assertEquals(2, index.size(), "block 2 is held by nobody now");
        int[] matched = new int[2];
        index.matchLeading(chain(1, 2, 3), matched, new long[1]);
        assertArrayEquals(new int[] {1, 0}, matched);
    }

    @Test
    void moreThan64ReplicasWidenTheBitSets() {
        PrefixIndex index = new PrefixIndex();
        addAll(index, 3, 1, 2);
        addAll(index, 130, 1, 2, 3);
        addAll(index, 64, 1);
        assertEquals(3, index.words());
        int[] matched = new int[131];
        index.matchLeading(chain(1, 2, 3), matched, new long[index.words()]);
        assertEquals(2, matched[3]);
        assertEquals(3, matched[130]);
        assertEquals(1, matched[64]);
        assertEquals(0, matched[0]);
    }

    /** Random adds, removes and clears against a set per replica. */
    @Test
    void agreesWithASetPerReplica() {
        Random random = new Random(5);
        PrefixIndex index = new PrefixIndex();
        int replicas = 70;
        List<Set<Long>> model = new ArrayList<>();
        for (int r = 0; r < replicas; r++) {
            model.add(new HashSet<>());
        }
        for (int step = 0; step < 200_000; step++) {
            int r = random.nextInt(replicas);
            long id = 1 + random.nextInt(3000);
            int op = random.nextInt(100);
            if (op < 60) {
                index.add(r, id, ~id);
                model.get(r).add(id);
            } else if (op < 99) {
                index.remove(r, id, ~id);
                model.get(r).remove(id);
            } else if (random.nextInt(20) == 0) {
                index.clear(r);
                model.get(r).clear();
            }
        }
        Set<Long> union = new HashSet<>();
        model.forEach(union::addAll);
        assertEquals(union.size(), index.size());
        for (long id = 1; id <= 3000; id++) {
            for (int r = 0; r < replicas; r++) {
                assertEquals(model.get(r).contains(id), index.holds(r, id, ~id));
            }
        }
        long[] prompt = chain(1, 2, 3, 4, 5);
        int[] matched = new int[replicas];
        index.matchLeading(prompt, matched, new long[index.words()]);
        for (int r = 0; r < replicas; r++) {
            int expected = 0;
            while (expected < 5 && model.get(r).contains((long) expected + 1)) {
                expected++;
            }
            assertEquals(expected, matched[r], "replica " + r);
        }
    }
}
