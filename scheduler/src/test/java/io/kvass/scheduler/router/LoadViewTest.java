package io.kvass.scheduler.router;

import static io.kvass.scheduler.router.Replicas.MS;
import static io.kvass.scheduler.router.Replicas.cached;
import static io.kvass.scheduler.router.Replicas.prompt;
import static io.kvass.scheduler.router.Replicas.report;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class LoadViewTest {
    private final RouterSettings settings = RouterSettings.defaults().withStaleAfter(Duration.ofMillis(500));
    private final LoadView view = new LoadView("gw-1", settings);

    @Test
    void aReportOlderThanTheBoundMakesTheReplicaStale() {
        view.apply(report("a").build(), 1_000 * MS);
        assertTrue(view.isFresh("a", 1_500 * MS));
        assertFalse(view.isFresh("a", 1_501 * MS));
        view.apply(report("a").seq(1).delta(new long[0], new long[0]).build(), 1_600 * MS);
        assertTrue(view.isFresh("a", 2_000 * MS));
        assertFalse(view.isFresh("nobody", 0));
    }

    @Test
    void deltasApplyInSequenceAndAGapAsksForASnapshotOnce() {
        long[] p1 = cached(CacheScope.BASE, prompt(1, 64));
        long[] p2 = cached(CacheScope.BASE, prompt(2, 64));
        assertEquals(ReportOutcome.APPLIED, view.apply(report("a").holding(p1).build(), 0));
        assertTrue(view.knowsPrefixesOf("a"));
        assertEquals(4, view.numIndexedBlocks());
        assertEquals(ReportOutcome.APPLIED, view.apply(report("a").seq(1).delta(p2, p1).build(), 1));
        assertEquals(4, view.numIndexedBlocks());
        assertEquals(ReportOutcome.IGNORED_OLD, view.apply(report("a").seq(1).delta(p1, p2).build(), 2));

        // seq 2 lost: the delta of seq 3 cannot apply
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT, view.apply(report("a").seq(3).delta(p1, new long[0]).build(), 3));
        assertFalse(view.knowsPrefixesOf("a"));
        assertEquals(0, view.numIndexedBlocks());
        // asked already: not again until the staleness bound has passed
        assertEquals(ReportOutcome.APPLIED, view.apply(report("a").seq(4).delta(new long[0], new long[0]).build(), 100 * MS));
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT,
                view.apply(report("a").seq(5).delta(new long[0], new long[0]).build(), 600 * MS));
        assertEquals(ReportOutcome.APPLIED, view.apply(report("a").seq(6).holding(p1).build(), 700 * MS));
        assertTrue(view.knowsPrefixesOf("a"));
        assertEquals(4, view.numIndexedBlocks());
    }

    @Test
    void aDeltaFromAReplicaSeenForTheFirstTimeAsksForASnapshot() {
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT,
                view.apply(report("a").seq(7).delta(cached(CacheScope.BASE, prompt(1, 32)), new long[0]).build(), 0));
        assertFalse(view.knowsPrefixesOf("a"));
        assertEquals(0, view.numIndexedBlocks());
        assertTrue(view.isFresh("a", 0), "its load still counts");
    }

    @Test
    void aNewEpochStartsOver() {
        view.apply(report("a").seq(5).holding(cached(CacheScope.BASE, prompt(1, 64))).build(), 0);
        view.recordSend("a", 3);
        assertEquals(1, view.inflight("a"));
        Replicas.Report restarted = report("a").seq(0).delta(new long[0], new long[0]);
        restarted.epoch = 2;
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT, view.apply(restarted.build(), 1));
        assertEquals(0, view.inflight("a"));
        assertEquals(0, view.numIndexedBlocks());
    }

    @Test
    void inFlightSendsCountUntilAReportCountsThem() {
        view.apply(report("a").build(), 0);
        view.recordSend("a", 5);
        view.recordSend("a", 7);
        view.recordSend("a", 11);
        assertEquals(3, view.inflight("a"));
        ReplicaState a = view.slots()[0];
        assertEquals(1000 - 23, a.availableBlocks());
        assertEquals(3, a.load());

        // the replica has received the first two of this gateway's sends (another gateway's count is irrelevant)
        Replicas.Report r1 = report("a").seq(1).delta(new long[0], new long[0]).load(2, 0);
        r1.receivedFrom.put("gw-1", 2L);
        r1.receivedFrom.put("gw-2", 40L);
        view.apply(r1.build(), 1);
        assertEquals(1, view.inflight("a"));
        assertEquals(1000 - 11, a.availableBlocks());
        assertEquals(3, a.load());

        // a report that does not say retires every earlier send
        view.recordSend("a", 2);
        view.apply(report("a").seq(2).delta(new long[0], new long[0]).load(4, 0).build(), 2);
        assertEquals(0, view.inflight("a"));
        assertEquals(1000, a.availableBlocks());
    }

    @Test
    void removedReplicasAreForgottenAndTheirSlotReused() {
        view.apply(report("a").holding(cached(CacheScope.BASE, prompt(1, 64))).build(), 0);
        view.apply(report("b").holding(cached(CacheScope.BASE, prompt(2, 64))).build(), 0);
        assertEquals(8, view.numIndexedBlocks());
        assertTrue(view.remove("a"));
        assertFalse(view.remove("a"));
        assertEquals(4, view.numIndexedBlocks());
        assertEquals(1, view.numReplicas());
        view.apply(report("c").build(), 0);
        assertEquals("c", view.slots()[0].id);
        assertEquals(2, view.numSlots());
    }

    @Test
    void aMalformedUpdateCountsAsLost() {
        view.apply(report("a").holding(cached(CacheScope.BASE, prompt(1, 64))).build(), 0);
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT, view.apply(report("a").seq(1).delta(new long[3], new long[0]).build(), 1));
        assertFalse(view.knowsPrefixesOf("a"));
    }
}
