package io.kvass.scheduler.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvass.kvpaging.CacheScope;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.step.ContinuingSequence;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RunningTableTest {
    private static final int MAX_MODEL_LEN = 4096;

    private static SequenceState sequence(String id, long arrival, int[] prompt, SamplingParams params) {
        return new SequenceState(new Request(id, prompt, params, CacheScope.BASE, 0, 0, arrival), 0, 1, MAX_MODEL_LEN);
    }

    private static SequenceState sequence(String id, long arrival) {
        return sequence(id, arrival, new int[] {5, 6, 7}, SamplingParams.builder().maxTokens(10).build());
    }

    private static RunningTable table(int capacity) {
        return new RunningTable(SchedulingPolicy.FCFS.order(), capacity);
    }

    private static List<String> idsInOrder(RunningTable table) {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < table.size(); i++) {
            ids.add(table.sequence(table.slotAt(i)).seqId());
        }
        return ids;
    }

    @Test
    void keepsPolicyOrderWhateverTheOrderOfArrival() {
        RunningTable table = table(2);
        table.add(sequence("c", 30), null, 0);
        table.add(sequence("a", 10), null, 0);
        table.add(sequence("d", 40), null, 0); // past the initial capacity: grows
        table.add(sequence("b", 20), null, 0);
        assertEquals(List.of("a", "b", "c", "d"), idsInOrder(table));
        assertEquals("d", table.removeLast().seqId());
        assertEquals(List.of("a", "b", "c"), idsInOrder(table));
    }

    @Test
    void takesTheTokensAndStopRulesInAndHandsTheTokensBack() {
        SamplingParams params = SamplingParams.builder().minTokens(2).maxTokens(4).ignoreEos(true)
                .stopTokenIds(Set.of(9)).build();
        SequenceState seq = sequence("r", 1, new int[] {5, 6, 7}, params);
        RunningTable table = table(4);
        int slot = table.add(seq, null, 2);
        assertEquals(slot, seq.runningSlot());
        assertEquals(2, table.numComputed(slot));
        assertEquals(2, seq.numComputed(), "the sequence reads its counts from the table while it runs");
        assertEquals(5, table.minLength(slot));
        assertEquals(7, table.maxLength(slot));
        assertEquals(true, table.ignoresEos(slot));
        assertArrayEquals(new int[] {9}, table.stopTokenIds(slot));
        table.append(slot, 11);
        table.append(slot, 12);
        assertEquals(5, table.numTokens(slot));
        assertArrayEquals(new int[] {5, 6, 7, 11, 12}, seq.tokens());
        table.remove(seq);
        assertEquals(-1, seq.runningSlot());
        assertNull(table.sequence(slot));
        assertArrayEquals(new int[] {5, 6, 7, 11, 12}, seq.tokens(), "its tokens come back with it");
        assertArrayEquals(new int[] {11, 12}, seq.outputTokens());
        assertEquals(0, seq.numComputed(), "nothing is computed for a sequence out of the table");
    }

    @Test
    void growsATokenArrayThatIsFull() {
        // NOTE: max_tokens past the reserved length: the array starts at the prompt plus 16 and doubles
        SequenceState seq = sequence("r", 1, new int[] {1}, SamplingParams.builder().maxTokens(5000).build());
        RunningTable table = table(1);
        int slot = table.add(seq, null, 0);
        int[] expected = new int[101];
        expected[0] = 1;
        for (int t = 1; t <= 100; t++) {
            table.append(slot, 1000 + t);
            expected[t] = 1000 + t;
        }
        assertArrayEquals(expected, seq.tokens());
        table.remove(seq);
        assertArrayEquals(expected, seq.tokens());
    }

    /** Appended tokens are buffered: reads at every count around the buffer's size see all of them, in order. */
    @Test
    void everyReadSeesEveryTokenAppendedSoFar() {
        for (int readEvery = 1; readEvery <= 2 * RunningTable.PENDING_TOKENS + 1; readEvery++) {
            SequenceState seq = sequence("r", 1, new int[] {1, 2}, SamplingParams.builder().maxTokens(5000).build());
            RunningTable table = table(2);
            table.add(sequence("other", 0), null, 0); // so that its buffer is not the first one
            int slot = table.add(seq, null, 0);
            List<Integer> expected = new ArrayList<>(List.of(1, 2));
            for (int t = 0; t < 3 * RunningTable.PENDING_TOKENS + 5; t++) {
                table.append(slot, 100 + t);
                expected.add(100 + t);
                assertEquals(expected.size(), table.numTokens(slot));
                if (t % readEvery == 0) {
                    int[] array = table.tokens(slot);
                    assertArrayEquals(expected.stream().mapToInt(Integer::intValue).toArray(),
                            Arrays.copyOf(array, table.numTokens(slot)), "read every " + readEvery + " after " + t);
                }
            }
            table.remove(seq);
            assertArrayEquals(expected.stream().mapToInt(Integer::intValue).toArray(), seq.tokens(),
                    "handed back with the pending ones, read every " + readEvery);
            assertArrayEquals(new int[] {5, 6, 7}, Arrays.copyOf(table.tokens(table.slotAt(0)), 3), "the other slot's tokens");
        }
    }

    @Test
    void aSlotLeftFreeIsGivenToTheNextSequenceWithItsCountersReset() {
        RunningTable table = table(1);
        SequenceState first = sequence("a", 1);
        int slot = table.add(first, null, 3);
        table.setScheduled(slot, 1);
        table.setKvCapacity(slot, 16);
        table.setDecodeEntry(slot, new ContinuingSequence("a", 1, 1, new int[0]));
        table.remove(first);
        SequenceState second = sequence("b", 2);
        assertEquals(slot, table.add(second, null, 0));
        assertSame(second, table.sequence(slot));
        assertEquals(0, table.numComputed(slot));
        assertEquals(0, table.numScheduled(slot));
        assertEquals(0, table.kvCapacity(slot));
        assertNull(table.decodeEntry(slot));
        assertEquals(3, table.numTokens(slot));
    }

    @Test
    void aNewKvCapacityForgetsThePlanEntryMadeForTheOldOne() {
        RunningTable table = table(1);
        int slot = table.add(sequence("a", 1), null, 0);
        table.setDecodeEntry(slot, new ContinuingSequence("a", 1, 1, new int[0]));
        table.setKvCapacity(slot, 32);
        assertNull(table.decodeEntry(slot));
        assertEquals(32, table.kvCapacity(slot));
    }

    @Test
    void refusesToRemoveASequenceItDoesNotHold() {
        RunningTable table = table(2);
        SequenceState seq = sequence("a", 1);
        assertThrows(IllegalArgumentException.class, () -> table.remove(seq));
        table.add(seq, null, 0);
        table.remove(seq);
        assertThrows(IllegalArgumentException.class, () -> table.remove(seq));
        assertThrows(IllegalStateException.class, table::removeLast);
    }

    /** Random adds, removals and appends against a plain list model: order, slots and counters agree. */
    @Test
    void agreesWithAListUnderRandomChanges() {
        Random random = new Random(7);
        RunningTable table = table(1);
        List<SequenceState> model = new ArrayList<>(); // in policy order
        Map<SequenceState, List<Integer>> appended = new HashMap<>();
        for (int op = 0; op < 5000; op++) {
            int choice = random.nextInt(4);
            if (choice == 0 || model.isEmpty()) {
                SequenceState seq = sequence("s" + op, random.nextInt(1000));
                int slot = table.add(seq, null, 0);
                table.setComputed(slot, op % 3);
                model.add(seq);
                model.sort(SchedulingPolicy.FCFS.order());
                appended.put(seq, new ArrayList<>());
            } else if (choice == 1) {
                SequenceState seq = model.remove(random.nextInt(model.size()));
                table.remove(seq);
                assertEquals(seq.numTokens(), 3 + appended.get(seq).size());
            } else if (choice == 2) {
                SequenceState last = model.removeLast();
                assertSame(last, table.removeLast());
            } else {
                SequenceState seq = model.get(random.nextInt(model.size()));
                table.append(seq.runningSlot(), op);
                appended.get(seq).add(op);
            }
            assertEquals(model.size(), table.size());
            for (int i = 0; i < model.size(); i++) {
                SequenceState seq = model.get(i);
                int slot = table.slotAt(i);
                assertSame(seq, table.sequence(slot), "position " + i);
                assertEquals(seq.seqId(), table.seqId(slot));
                assertEquals(slot, seq.runningSlot());
                assertEquals(3 + appended.get(seq).size(), table.numTokens(slot));
            }
        }
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < table.size(); i++) {
            assertFalse(slots.contains(table.slotAt(i)), "a slot held twice");
            slots.add(table.slotAt(i));
        }
    }
}
