package io.kvass.scheduler.router;

import io.kvass.kvpaging.PrefixCacheUpdate;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * The replica's side of the load reports: numbers them within an epoch, counts the requests received from each
 * gateway (so each gateway can retire exactly the sends a report covers) and remembers that a gateway asked for a
 * snapshot. The engine actor's report timer does
 * <pre>{@code
 * PrefixCacheUpdate update = kv.drainPrefixCacheUpdate(reporter.takeSnapshotRequest());
 * LoadReport report = reporter.next(load, adapters, update, healthy, System.currentTimeMillis());
 * // publish to every gateway
 * }</pre>
 *
 * <p>NOTE: not thread-safe: the replica's engine actor owns it.
 */
public final class ReplicaReporter {

    /** The replica's load numbers for one report. */
    public record Load(int blockSize, int freeKvBlocks, int totalKvBlocks, int running, int waiting, int maxNumSeqs) {
    }

    private final String replicaId;
    private final String address;
    private final String model;
    private final long epoch;
    private final Map<String, Long> receivedFrom = new HashMap<>();
    private long nextSeq;
    private boolean snapshotAsked;

    /** @param epoch new for every start of the replica's engine (e.g. its start time in milliseconds) */
    public ReplicaReporter(String replicaId, String address, String model, long epoch) {
        this.replicaId = Objects.requireNonNull(replicaId, "replicaId");
        this.address = Objects.requireNonNull(address, "address");
        this.model = Objects.requireNonNull(model, "model");
        this.epoch = epoch;
    }

    /** A request routed by {@code gatewayId} arrived. */
    public void onReceived(String gatewayId) {
        receivedFrom.merge(gatewayId, 1L, Long::sum);
    }

    /** A gateway asked for a snapshot ({@link ReportOutcome#ASK_FOR_SNAPSHOT}). */
    public void onSnapshotAsked() {
        snapshotAsked = true;
    }

    /** Whether the next report must carry a snapshot; clears the request. */
    public boolean takeSnapshotRequest() {
        boolean asked = snapshotAsked;
        snapshotAsked = false;
        return asked;
    }

    public LoadReport next(Load load, Map<Long, AdapterTier> adapters, PrefixCacheUpdate prefixes, boolean healthy,
                           long nowMillis) {
        return new LoadReport(replicaId, address, model, epoch, nextSeq++, nowMillis, load.blockSize(),
                load.freeKvBlocks(), load.totalKvBlocks(), load.running(), load.waiting(), load.maxNumSeqs(), adapters,
                receivedFrom, prefixes, healthy);
    }
}
