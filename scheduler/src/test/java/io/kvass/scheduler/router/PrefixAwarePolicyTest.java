package io.kvass.scheduler.router;

import static io.kvass.scheduler.router.Replicas.BS;
import static io.kvass.scheduler.router.Replicas.MS;
import static io.kvass.scheduler.router.Replicas.cached;
import static io.kvass.scheduler.router.Replicas.prompt;
import static io.kvass.scheduler.router.Replicas.report;
import static io.kvass.scheduler.router.Replicas.request;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvass.kvpaging.CacheScope;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class PrefixAwarePolicyTest {
    private static final CacheScope ADAPTER_7 = new CacheScope(7, "");

    private final RouterSettings settings = RouterSettings.defaults();
    private final LoadView view = new LoadView("gw-1", settings);
    private final PrefixAwarePolicy policy = new PrefixAwarePolicy();

    private RouteDecision pick(RouteRequest request) {
        return policy.pick(request, view, 0);
    }

    private static RouteDecision.Send send(String replica, RouteDecision.Reason reason, int matched, int blocks) {
        return new RouteDecision.Send(replica, reason, matched, blocks);
    }

    @Test
    void prefixAffinityWinsOverASlightlyLessLoadedReplica() {
        int[] shared = prompt(1, 640);
        view.apply(report("a").load(6, 0).holding(cached(CacheScope.BASE, Arrays.copyOf(shared, 320))).build(), 0);
        view.apply(report("b").load(2, 0).build(), 0);
        view.apply(report("c").load(2, 0).holding(cached(CacheScope.BASE, prompt(9, 320))).build(), 0);
        assertEquals(send("a", RouteDecision.Reason.PREFIX, 320, 40 - 20), pick(request("r", shared)));
    }

    @Test
    void theLongestLeadingMatchWinsAndASaltOrAdapterNeverMatches() {
        int[] p = prompt(1, 640);
        view.apply(report("a").holding(cached(CacheScope.BASE, Arrays.copyOf(p, 160))).build(), 0);
        view.apply(report("b").holding(cached(CacheScope.BASE, Arrays.copyOf(p, 480))).build(), 0);
        view.apply(report("c").holding(cached(new CacheScope(0, "other-tenant"), p)).build(), 0);
        assertEquals(send("b", RouteDecision.Reason.PREFIX, 480, 10), pick(request("r", p)));
        // under a salt nobody has cached: no prefix anywhere, the tie goes to the smallest id
        assertEquals(send("a", RouteDecision.Reason.LOAD, 0, 40),
                pick(request("s", "t", 0, new CacheScope(0, "tenant-x"), p)));
    }

    @Test
    void adapterResidencyOrderIsDeviceThenHostThenDisk() {
        view.apply(report("disk").build(), 0);
        view.apply(report("host").adapter(7, AdapterTier.HOST).build(), 0);
        RouteRequest r = request("r", "t", 0, ADAPTER_7, prompt(1, 100));
        assertEquals("host", ((RouteDecision.Send) pick(r)).replicaId());
        assertEquals(RouteDecision.Reason.ADAPTER, ((RouteDecision.Send) pick(r)).reason());
        view.apply(report("device").adapter(7, AdapterTier.DEVICE).adapter(8, AdapterTier.HOST).build(), 0);
        assertEquals(send("device", RouteDecision.Reason.ADAPTER, 0, 7), pick(r));
        // a base-model request ignores adapters: all equal, the smallest id
        assertEquals("device", ((RouteDecision.Send) pick(request("b", prompt(1, 100)))).replicaId());
        assertEquals(RouteDecision.Reason.LOAD, ((RouteDecision.Send) pick(request("b", prompt(1, 100)))).reason());
    }

    @Test
    void aHotReplicaLosesAffinityPastBothBalanceThresholds() {
        int[] p = prompt(1, 320);
        long[] held = cached(CacheScope.BASE, p);
        view.apply(report("hot").load(40, 0).holding(held).build(), 0); // 40 - 5 > 32 and 40 > 1.5 * 5
        view.apply(report("cool").load(5, 0).build(), 0);
        view.apply(report("warm").load(9, 0).build(), 0);
        assertEquals(send("cool", RouteDecision.Reason.SPILL, 0, 20), pick(request("r", p)));

        // below the absolute threshold the prefix keeps it
        view.apply(report("hot").seq(1).load(36, 0).delta(new long[0], new long[0]).build(), 0);
        assertEquals(RouteDecision.Reason.PREFIX, ((RouteDecision.Send) pick(request("r", p))).reason());

        // past the absolute but not the relative threshold (big replicas) the prefix keeps it too
        LoadView big = new LoadView("gw", settings);
        Replicas.Report hot = report("hot").load(200, 0).holding(held);
        hot.maxNumSeqs = 512;
        Replicas.Report cool = report("cool").load(150, 0);
        cool.maxNumSeqs = 512;
        big.apply(hot.build(), 0);
        big.apply(cool.build(), 0);
        assertEquals("hot", ((RouteDecision.Send) policy.pick(request("r", p), big, 0)).replicaId());
    }

    @Test
    void staleUnhealthyAndOtherModelsAreIgnored() {
        int[] p = prompt(1, 320);
        view.apply(report("stale").holding(cached(CacheScope.BASE, p)).build(), 0);
        view.apply(report("sick").unhealthy().holding(cached(CacheScope.BASE, p)).build(), 900 * MS);
        Replicas.Report other = report("other").holding(cached(CacheScope.BASE, p));
        other.model = "mistral";
        view.apply(other.build(), 900 * MS);
        view.apply(report("plain").load(10, 0).build(), 900 * MS);
        assertEquals(send("plain", RouteDecision.Reason.LOAD, 0, 20), policy.pick(request("r", p), view, 1_001 * MS));
        assertEquals(new RouteDecision.Hold(RouteDecision.Why.NO_REPLICA), policy.pick(request("r", p), view, 2_000 * MS));
    }

    @Test
    void inFlightSendsCountAsLoadAndTakeKvBlocks() {
        int[] p = prompt(1, 320); // 20 blocks
        view.apply(report("a").build(), 0);
        view.apply(report("b").build(), 0);
        RouteDecision.Send first = (RouteDecision.Send) pick(request("r1", p));
        assertEquals("a", first.replicaId());
        view.recordSend(first);
        assertEquals("b", ((RouteDecision.Send) pick(request("r2", p))).replicaId(), "a now has one more queued");

        // KV: 30 free blocks take one 20-block prompt; with one in flight the second waits
        LoadView small = new LoadView("gw", settings);
        small.apply(report("a").free(30).build(), 0);
        RouteDecision.Send s = (RouteDecision.Send) policy.pick(request("r1", p), small, 0);
        small.recordSend(s);
        assertEquals(new RouteDecision.Hold(RouteDecision.Why.NO_ROOM), policy.pick(request("r2", p), small, 0));
    }

    @Test
    void cachedBlocksNeedNoFreeBlocks() {
        int[] p = prompt(1, 330); // 21 blocks, 20 looked up
        view.apply(report("a").free(5).holding(cached(CacheScope.BASE, p)).build(), 0);
        view.apply(report("b").free(25).build(), 0);
        assertEquals(send("a", RouteDecision.Reason.PREFIX, 320, 1), pick(request("r", p)));
    }

    @Test
    void holdsWhenEveryReplicaIsFullAndAnswersTheSameOnEveryGateway() {
        view.apply(report("a").load(64, settings.maxQueuedPerReplica()).build(), 0);
        assertEquals(new RouteDecision.Hold(RouteDecision.Why.NO_ROOM), pick(request("r", prompt(1, 100))));
        // two views fed the same reports in another order decide the same
        LoadView v1 = new LoadView("gw-1", settings);
        LoadView v2 = new LoadView("gw-2", settings);
        for (String id : new String[] {"x", "y", "z"}) {
            v1.apply(report(id).load(3, 0).build(), 0);
        }
        for (String id : new String[] {"z", "y", "x"}) {
            v2.apply(report(id).load(3, 0).build(), 0);
        }
        RouteRequest r = request("r", prompt(1, 100));
        assertEquals(policy.pick(r, v1, 0), new PrefixAwarePolicy().pick(r, v2, 0));
        assertEquals("x", ((RouteDecision.Send) policy.pick(r, v1, 0)).replicaId());
    }

    @Test
    void aReplicaWithAnotherBlockSizeGetsNoPrefixCredit() {
        int[] p = prompt(1, 320);
        Replicas.Report other = report("a").holding(cached(CacheScope.BASE, p));
        other.blockSize = 32;
        view.apply(other.build(), 0);
        RouteDecision.Send s = (RouteDecision.Send) pick(request("r", p));
        assertEquals(0, s.matchedTokens());
        assertEquals(10, s.blocksNeeded());
        assertEquals(BS, 16);
    }
}
