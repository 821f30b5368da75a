package io.kvass.scheduler.router;

/** The eligibility rules every {@link RoutingPolicy} applies (stated in its javadoc). */
final class Eligibility {
    private Eligibility() {
    }

    /** Healthy, fresh and serving the model. */
    static boolean serves(ReplicaState r, RouteRequest request, LoadView view, long nowNanos) {
        return r.healthy && view.isFresh(r, nowNanos) && r.model.equals(request.model());
    }

    /** Room for the request when its first {@code cachedBlocks} blocks are cached there. */
    static boolean hasRoom(ReplicaState r, RouteRequest request, int cachedBlocks, RouterSettings settings) {
        return r.waiting + r.inflight() < settings.maxQueuedPerReplica()
                && r.availableBlocks() >= request.blocksNeeded(cachedBlocks, r.blockSize);
    }
}
