package io.kvass.scheduler.router;

/** What applying a {@link LoadReport} to a {@link LoadView} asks of the gateway actor. */
public enum ReportOutcome {
    /** Taken in; nothing to do. */
    APPLIED,
    /**
     * Taken in, but the replica's prefix blocks are unknown (a gap in sequence numbers, a delta from a replica
     * seen for the first time, a malformed update): ask the replica for a full snapshot in its next report.
     * Returned again only once {@link RouterSettings#staleAfter()} has passed since it was last returned.
     */
    ASK_FOR_SNAPSHOT,
    /** Not newer than the report already held (a duplicate or reordered one): ignored. */
    IGNORED_OLD
}
