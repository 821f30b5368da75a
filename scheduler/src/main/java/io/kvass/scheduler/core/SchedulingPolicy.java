package io.kvass.scheduler.core;

import java.util.Comparator;

/**
 * Who goes first: the order of the waiting queue and of the running list. The last running
 * sequence in this order is the one preempted when KV blocks run out.
 */
public enum SchedulingPolicy {
    /** First come, first served: arrival time. */
    FCFS(Comparator.comparingLong((SequenceState s) -> s.request().arrivalNanos())),
    /** Lower priority value first, then arrival time. */
    PRIORITY(Comparator.comparingInt((SequenceState s) -> s.request().priority())
            .thenComparingLong(s -> s.request().arrivalNanos()));

    private final Comparator<SequenceState> order;

    SchedulingPolicy(Comparator<SequenceState> order) {
        // NOTE: total order (ties broken by id, then child index) so queues never merge distinct sequences.
        this.order = order.thenComparing(s -> s.request().requestId()).thenComparingInt(SequenceState::index);
    }

    public Comparator<SequenceState> order() {
        return order;
    }
}
