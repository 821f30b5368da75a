package io.kvass.scheduler.router;

import java.util.Arrays;
import java.util.Map;

/**
 * What one gateway knows of one replica: the numbers of its latest {@link LoadReport}, when that arrived, and the
 * gateway's own sends the report does not count yet. Its prefix blocks live in the shared {@link PrefixIndex}
 * under {@link #slot}.
 *
 * <p>NOTE: mutable, owned by {@link LoadView}; policies read the fields directly (one pass over all replicas per
 * decision reads primitives only).
 */
final class ReplicaState {
    private static final long[] NONE = new long[0];

    final String id;
    final int slot;
    String address = "";
    String model = "";
    long epoch;
    long lastSeq = -1;
    long receivedAtNanos;
    int blockSize = 1;
    int freeKvBlocks;
    int totalKvBlocks = 1;
    int running;
    int waiting;
    int maxNumSeqs = 1;
    boolean healthy;
    /** Whether the index holds exactly the replica's cached hashes (false until a snapshot, and after a gap). */
    boolean prefixKnown;
    /** When this gateway last asked for a snapshot, or Long.MIN_VALUE. */
    long snapshotAskedAtNanos = Long.MIN_VALUE;
    /** Sorted adapter ids per tier. */
    long[] deviceAdapters = NONE;
    long[] hostAdapters = NONE;

    // Sends from this gateway in this epoch; those after the first `acked` are not counted by the latest report.
    long sent;
    long acked;
    /** KV blocks each unacknowledged send needs, oldest first: a ring of {@code sent - acked} entries. */
    private int[] pendingBlocks = new int[16];
    private int pendingHead;
    int inflightBlocks;

    ReplicaState(String id, int slot) {
        this.id = id;
        this.slot = slot;
    }

    /** running + waiting + this gateway's unreported sends: what the balance rule and the queue term compare. */
    int load() {
        return running + waiting + inflight();
    }

    int inflight() {
        return (int) (sent - acked);
    }

    /** Free KV blocks once this gateway's unreported sends take theirs. */
    int availableBlocks() {
        return freeKvBlocks - inflightBlocks;
    }

    void takeLoad(LoadReport r, long nowNanos) {
        address = r.address();
        model = r.model();
        receivedAtNanos = nowNanos;
        blockSize = r.blockSize();
        freeKvBlocks = r.freeKvBlocks();
        totalKvBlocks = r.totalKvBlocks();
        running = r.running();
        waiting = r.waiting();
        maxNumSeqs = r.maxNumSeqs();
        healthy = r.healthy();
        deviceAdapters = idsOf(r.adapters(), AdapterTier.DEVICE);
        hostAdapters = idsOf(r.adapters(), AdapterTier.HOST);
    }

    /** A restarted replica: nothing this gateway knew of the old one holds. */
    void newEpoch(long newEpoch) {
        epoch = newEpoch;
        lastSeq = -1;
        prefixKnown = false;
        snapshotAskedAtNanos = Long.MIN_VALUE;
        sent = 0;
        acked = 0;
        pendingHead = 0;
        inflightBlocks = 0;
    }

    double adapterTier(long adapterId) {
        if (Arrays.binarySearch(deviceAdapters, adapterId) >= 0) {
            return 1.0;
        }
        return Arrays.binarySearch(hostAdapters, adapterId) >= 0 ? RouterSettings.HOST_TIER : 0.0;
    }

    void recordSend(int blocks) {
        int n = inflight();
        if (n == pendingBlocks.length) {
            int[] grown = new int[2 * n];
            for (int i = 0; i < n; i++) {
                grown[i] = pendingBlocks[(pendingHead + i) % n];
            }
            pendingBlocks = grown;
            pendingHead = 0;
        }
        pendingBlocks[(pendingHead + n) % pendingBlocks.length] = blocks;
        sent++;
        inflightBlocks += blocks;
    }

    /**
     * The report counts this gateway's first {@code received} sends of the epoch (or, when it does not say,
     * all of them): those leave the in-flight count, oldest first.
     */
    void acknowledge(long received) {
        long upTo = Math.min(Math.max(received, acked), sent);
        if (received > sent) {
            sent = received; // NOTE: sends from before this gateway saw the epoch; none of them is pending
        }
        while (acked < upTo) {
            inflightBlocks -= pendingBlocks[pendingHead];
            pendingHead = (pendingHead + 1) % pendingBlocks.length;
            acked++;
        }
        if (received > acked) {
            acked = received;
        }
    }

    private static long[] idsOf(Map<Long, AdapterTier> adapters, AdapterTier tier) {
        if (adapters.isEmpty()) {
            return NONE;
        }
        long[] ids = adapters.entrySet().stream().filter(e -> e.getValue() == tier)
                .mapToLong(Map.Entry::getKey).sorted().toArray();
        return ids.length == 0 ? NONE : ids;
    }
}
