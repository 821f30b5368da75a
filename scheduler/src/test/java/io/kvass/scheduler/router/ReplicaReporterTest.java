package io.kvass.scheduler.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.ComputedPrefix;
import io.kvass.kvpaging.KvCacheConfig;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.kvpaging.PrefixCacheUpdate;
import io.kvass.kvpaging.RequestKey;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A replica's reports, from a real KV cache, keep a gateway's view exact: the two sides end to end. */
class ReplicaReporterTest {
    private final ReplicaReporter reporter = new ReplicaReporter("r1", "node-1", Replicas.MODEL, 77);
    private final KvCacheManager kv = new KvCacheManager(new KvCacheConfig(256, Replicas.BS, true));
    private final LoadView view = new LoadView("gw-1", RouterSettings.defaults());
    private final PrefixAwarePolicy policy = new PrefixAwarePolicy();

    private ReportOutcome report(long now) {
        PrefixCacheUpdate update = kv.drainPrefixCacheUpdate(reporter.takeSnapshotRequest());
        LoadReport r = reporter.next(new ReplicaReporter.Load(Replicas.BS, kv.numFreeBlocks(), kv.numTotalBlocks(), 0,
                0, 64), Map.of(), update, true, 0);
        return view.apply(r, now);
    }

    private void compute(String id, int[] prompt) {
        RequestKey key = new RequestKey(id, CacheScope.BASE);
        ComputedPrefix prefix = kv.findCachedPrefix(key, prompt);
        assertTrue(kv.allocateSlots(key, prefix, prompt.length - prefix.numTokens()).isGranted());
        kv.cacheFullBlocks(id, prompt, prompt.length);
    }

    @Test
    void reportsNumberedAndCountingEachGatewaysSends() {
        assertEquals(ReportOutcome.APPLIED, report(0)); // the first update is a snapshot
        RouteRequest request = Replicas.request("q", Replicas.prompt(1, 200));
        RouteDecision.Send send = (RouteDecision.Send) policy.pick(request, view, 0);
        view.recordSend(send);
        view.recordSend(send);
        reporter.onReceived("gw-1");
        reporter.onReceived("gw-2");
        assertEquals(ReportOutcome.APPLIED, report(1));
        assertEquals(1, view.inflight("r1"), "one of gw-1's two sends has arrived");

        compute("q", Replicas.prompt(1, 200));
        assertEquals(ReportOutcome.APPLIED, report(2));
        RouteDecision.Send again = (RouteDecision.Send) policy.pick(Replicas.request("q2", Replicas.prompt(1, 200)), view, 2);
        assertEquals(192, again.matchedTokens(), "the gateway sees the blocks the replica cached (12 of 12 looked up)");
    }

    @Test
    void aSnapshotRequestIsAnsweredByTheNextReport() {
        report(0);
        compute("q", Replicas.prompt(1, 200));
        kv.drainPrefixCacheUpdate(false); // a report the gateway never got
        reporter.next(new ReplicaReporter.Load(Replicas.BS, 1, 1, 0, 0, 1), Map.of(),
                new PrefixCacheUpdate.Delta(new long[0], new long[0]), true, 0);
        assertEquals(ReportOutcome.ASK_FOR_SNAPSHOT, report(1));
        assertFalse(view.knowsPrefixesOf("r1"));
        reporter.onSnapshotAsked();
        assertEquals(ReportOutcome.APPLIED, report(2));
        assertTrue(view.knowsPrefixesOf("r1"));
        assertInstanceOf(PrefixCacheUpdate.Delta.class, kv.drainPrefixCacheUpdate(reporter.takeSnapshotRequest()));
        RouteDecision.Send s = (RouteDecision.Send) policy.pick(Replicas.request("q2", Replicas.prompt(1, 200)), view, 2);
        assertEquals(192, s.matchedTokens());
    }
}
