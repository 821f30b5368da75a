package io.kvass.scheduler.router;

/** A routing policy's answer for one request: send it to a replica now, or hold it at the gateway. */
public sealed interface RouteDecision {

    /** Why a replica was chosen; {@code /metrics} counts decisions by it. */
    enum Reason {
        /** It holds more of the prompt's leading blocks than other eligible replicas. */
        PREFIX,
        /** It holds the request's adapter in a better tier (device > host > disk) than other eligible replicas. */
        ADAPTER,
        /** Neither affinity set it apart: chosen for free KV blocks and queue depth. */
        LOAD,
        /** The replica affinity pointed to was too busy (the balance thresholds): the least-loaded one instead. */
        SPILL,
        /** The round-robin policy's turn. */
        ROUND_ROBIN
    }

    /** Why a request waits. */
    enum Why {
        /** No healthy replica with a fresh report serves the model. */
        NO_REPLICA,
        /** Replicas serve the model, but none has room (queue bound, or free KV blocks for the prompt). */
        NO_ROOM
    }

    /**
     * @param matchedTokens prompt tokens the replica is expected to find cached
     * @param blocksNeeded  KV blocks the replica is expected to allocate for the rest; pass the decision to
     *                      {@link LoadView#recordSend(Send)} when the request is sent
     */
    record Send(String replicaId, Reason reason, int matchedTokens, int blocksNeeded) implements RouteDecision {
    }

    record Hold(Why why) implements RouteDecision {
    }
}
