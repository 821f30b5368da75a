package io.kvass.scheduler.router;

import static io.kvass.scheduler.router.Replicas.cached;
import static io.kvass.scheduler.router.Replicas.prompt;
import static io.kvass.scheduler.router.Replicas.report;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class AdmissionQueueTest {
    private final RouterSettings settings = RouterSettings.defaults().withMaxQueuedPerReplica(2);
    private final LoadView view = new LoadView("gw-1", settings);
    private final PrefixAwarePolicy policy = new PrefixAwarePolicy();
    private final AdmissionQueue queue = new AdmissionQueue(100);
    private long seq;

    private static RouteRequest req(String id, String tenant, int priority) {
        return Replicas.request(id, tenant, priority, CacheScope.BASE, prompt(1, 40));
    }

    private static RouteRequest req(String id, String tenant, String model) {
        return new RouteRequest(id, tenant, 0, model, 0, 40, 16, new long[0]);
    }

    private List<String> release() {
        List<String> ids = new ArrayList<>();
        for (AdmissionQueue.Placed p : queue.release(policy, view, 0)) {
            ids.add(p.request().requestId());
        }
        return ids;
    }

    /** The replica reports: it received every earlier send and now runs {@code running}, none waiting. */
    private void reportRunning(int running) {
        view.apply(report("a").seq(seq++).load(running, 0).build(), 0);
    }

    @Test
    void holdsWhileNoReplicaHasRoomAndReleasesLater() {
        for (int i = 0; i < 5; i++) {
            assertEquals(AdmissionQueue.Offer.QUEUED, queue.offer(req("r" + i, "t", 0)));
        }
        assertEquals(List.of(), release(), "no replica yet");
        assertEquals(5, queue.size());
        reportRunning(0);
        assertEquals(List.of("r0", "r1"), release(), "room for two queued");
        assertEquals(List.of(), release(), "the two sends count until a report does");
        reportRunning(2);
        assertEquals(List.of("r2", "r3"), release());
        reportRunning(4);
        assertEquals(List.of("r4"), release());
        assertEquals(0, queue.size());
        assertEquals(1, view.inflight("a"));
    }

    @Test
    void tenantsTakeTurnsWithinAPriorityAndEachTenantIsFirstInFirstOut() {
        for (int i = 0; i < 6; i++) {
            queue.offer(req("big-" + i, "big", 0));
        }
        queue.offer(req("small-0", "small", 0));
        queue.offer(req("small-1", "small", 0));
        queue.offer(req("mid-0", "mid", 0));
        List<String> order = new ArrayList<>();
        for (int round = 0; round < 6; round++) {
            reportRunning(0);
            order.addAll(release());
        }
        assertEquals(List.of("big-0", "small-0", "mid-0", "big-1", "small-1", "big-2", "big-3", "big-4", "big-5"),
                order.subList(0, 9));
    }

    @Test
    void aTenantThatCouldNotGoKeepsItsTurn() {
        queue.offer(req("a1", "A", 0));
        queue.offer(req("b1", "B", 0));
        queue.offer(req("a2", "A", 0));
        queue.offer(req("b2", "B", 0));
        view.apply(report("a").seq(seq++).load(0, settings.maxQueuedPerReplica() - 1).build(), 0); // room for one
        assertEquals(List.of("a1"), release());
        reportRunning(0);
        assertEquals(List.of("b1", "a2"), release(), "B was next, then A again");
    }

    @Test
    void lowerPriorityValuesGoFirstAndLowerPrioritiesDoNotOvertake() {
        queue.offer(req("late-low", "t", 5));
        queue.offer(req("urgent", "u", 0));
        queue.offer(req("normal", "t", 1));
        view.apply(report("a").seq(seq++).load(0, 1).build(), 0); // room for one
        assertEquals(List.of("urgent"), release());
        reportRunning(0);
        assertEquals(List.of("normal", "late-low"), release());
    }

    @Test
    void aBlockedModelDoesNotHoldUpOthers() {
        view.apply(report("a").build(), 0);
        Replicas.Report m = report("m");
        m.model = "mistral";
        m.waiting = settings.maxQueuedPerReplica(); // full
        view.apply(m.build(), 0);
        queue.offer(req("m1", "t", "mistral"));
        queue.offer(req("l1", "t", Replicas.MODEL)); // same tenant: FIFO per model, not across models
        queue.offer(req("m2", "u", "mistral"));
        queue.offer(req("l2", "u", Replicas.MODEL));
        queue.offer(req("x1", "v", "unknown-model"));
        queue.offer(req("l3", "v", Replicas.MODEL));
        assertEquals(List.of("l1", "l2"), release(), "room for two at a");
        assertEquals(4, queue.size());
        view.apply(report("a").seq(1).delta(new long[0], new long[0]).build(), 0);
        assertEquals(List.of("l3"), release());
    }

    @Test
    void boundedAbortableAndNoDuplicates() {
        AdmissionQueue small = new AdmissionQueue(2);
        assertEquals(AdmissionQueue.Offer.QUEUED, small.offer(req("r1", "t", 0)));
        assertEquals(AdmissionQueue.Offer.DUPLICATE, small.offer(req("r1", "t", 0)));
        assertEquals(AdmissionQueue.Offer.QUEUED, small.offer(req("r2", "t", 0)));
        assertEquals(AdmissionQueue.Offer.QUEUE_FULL, small.offer(req("r3", "t", 0)));
        assertTrue(small.abort("r1"));
        assertFalse(small.abort("r1"));
        assertFalse(small.contains("r1"));
        assertEquals(AdmissionQueue.Offer.QUEUED, small.offer(req("r3", "t", 0)));
        reportRunning(0);
        List<String> ids = new ArrayList<>();
        small.release(policy, view, 0).forEach(p -> ids.add(p.request().requestId()));
        assertEquals(List.of("r2", "r3"), ids, "the aborted request is never placed");
        assertEquals(0, small.size());
    }

    @Test
    void manyAbortsStayBounded() {
        AdmissionQueue q = new AdmissionQueue(10);
        for (int i = 0; i < 5000; i++) {
            assertEquals(AdmissionQueue.Offer.QUEUED, q.offer(req("r" + i, "t" + (i % 3), i % 2)));
            assertTrue(q.abort("r" + i));
        }
        assertEquals(0, q.size());
        reportRunning(0);
        assertEquals(List.of(), q.release(policy, view, 0));
    }

    @Test
    void releasedRequestsCarryTheirDecision() {
        int[] p = prompt(1, 320);
        view.apply(report("a").holding(cached(CacheScope.BASE, p)).build(), 0);
        view.apply(report("b").build(), 0);
        queue.offer(Replicas.request("r", p));
        AdmissionQueue.Placed placed = queue.release(policy, view, 0).getFirst();
        assertEquals(new RouteDecision.Send("a", RouteDecision.Reason.PREFIX, 304, 1), placed.send());
        assertEquals(1, view.inflight("a"));
    }
}
