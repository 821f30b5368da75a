package io.kvass.scheduler.router;

/**
 * Picks a replica for a request from a gateway's {@link LoadView}, or says why it must wait. Pure: it reads the
 * view and changes nothing in it (the caller records the send).
 *
 * <p>Eligible replicas (the same for every policy): healthy, with a report no older than
 * {@link RouterSettings#staleAfter()}, serving the request's model, and with room: fewer than
 * {@link RouterSettings#maxQueuedPerReplica()} requests waiting there or sent by this gateway and not yet counted,
 * and enough free KV blocks (less those of the gateway's uncounted sends) for the prompt's uncached blocks.
 *
 * <p>NOTE: implementations keep scratch space: one instance per gateway actor, not thread-safe.
 */
public interface RoutingPolicy {

    RouteDecision pick(RouteRequest request, LoadView view, long nowNanos);
}
