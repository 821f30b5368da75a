package io.kvass.scheduler.router;

import io.kvass.scheduler.engine.ReplicaLoad;

/**
 * A gateway's view of one replica: its last report, when it arrived (local clock: no cross-node clock
 * comparison), and how many requests this gateway sent it since (the report cannot know them yet).
 */
public record ReplicaView(ReplicaLoad load, long receivedNanos, int sentSinceReport) {

    public ReplicaView withOneMoreInFlight() {
        return new ReplicaView(load, receivedNanos, sentSinceReport + 1);
    }

    /** Requests it holds or will soon hold: running, waiting, and this gateway's sends since the report. */
    public int queued() {
        return load.stats().numRunning() + load.stats().numWaiting() + sentSinceReport;
    }
}
