package io.kvass.scheduler.router;

/**
 * The baseline: eligible replicas ({@link RoutingPolicy}) in turn, by replica id, ignoring prefixes, adapters and
 * load beyond the room check. For comparing against {@link PrefixAwarePolicy} (TTFT with shared prefixes).
 */
public final class RoundRobinPolicy implements RoutingPolicy {
    private String lastId = "";

    @Override
    public RouteDecision pick(RouteRequest request, LoadView view, long nowNanos) {
        ReplicaState[] order = view.byIdOrder();
        int start = 0;
        while (start < order.length && order[start].id.compareTo(lastId) <= 0) {
            start++; // NOTE: the first replica after the last one picked, so a replica leaving keeps the turn order
        }
        boolean anyServes = false;
        for (int i = 0; i < order.length; i++) {
            ReplicaState r = order[(start + i) % order.length];
            if (!Eligibility.serves(r, request, view, nowNanos)) {
                continue;
            }
            anyServes = true;
            if (Eligibility.hasRoom(r, request, 0, view.settings())) {
                lastId = r.id;
                return new RouteDecision.Send(r.id, RouteDecision.Reason.ROUND_ROBIN, 0, request.blocksNeeded(0, r.blockSize));
            }
        }
        return new RouteDecision.Hold(anyServes ? RouteDecision.Why.NO_ROOM : RouteDecision.Why.NO_REPLICA);
    }
}
