package io.kvass.scheduler.router;

import static io.kvass.scheduler.router.Replicas.cached;
import static io.kvass.scheduler.router.Replicas.prompt;
import static io.kvass.scheduler.router.Replicas.report;
import static io.kvass.scheduler.router.Replicas.request;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvass.kvpaging.CacheScope;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class RoundRobinPolicyTest {
    private final LoadView view = new LoadView("gw", RouterSettings.defaults());
    private final RoundRobinPolicy policy = new RoundRobinPolicy();

    private String next() {
        return ((RouteDecision.Send) policy.pick(request("r", prompt(1, 320)), view, 0)).replicaId();
    }

    @Test
    void takesEligibleReplicasInTurnIgnoringPrefixes() {
        view.apply(report("c").build(), 0);
        view.apply(report("a").holding(cached(CacheScope.BASE, prompt(1, 320))).build(), 0);
        view.apply(report("b").build(), 0);
        view.apply(report("sick").unhealthy().build(), 0);
        List<String> order = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            order.add(next());
        }
        assertEquals(List.of("a", "b", "c", "a", "b", "c"), order);
        view.remove("b");
        assertEquals("a", next());
        assertEquals("c", next(), "b's turn passes to the next one");
        RouteDecision.Send s = (RouteDecision.Send) policy.pick(request("r", prompt(1, 320)), view, 0);
        assertEquals(RouteDecision.Reason.ROUND_ROBIN, s.reason());
        assertEquals(20, s.blocksNeeded());
    }

    @Test
    void holdsWhenNothingHasRoom() {
        assertEquals(new RouteDecision.Hold(RouteDecision.Why.NO_REPLICA),
                policy.pick(request("r", prompt(1, 32)), view, 0));
        view.apply(report("a").free(1).build(), 0);
        assertEquals(new RouteDecision.Hold(RouteDecision.Why.NO_ROOM),
                policy.pick(request("r", prompt(1, 32)), view, 0));
    }
}
