package io.kvass.scheduler.router;

import io.kvass.scheduler.engine.ReplicaLoad;

/**
 * What a gateway shows of one replica: its last report, when it arrived (the gateway's clock), and how many
 * requests this gateway sent it that no report counts yet.
 */
public record ReplicaView(ReplicaLoad load, long receivedNanos, int sentSinceReport) {
}
