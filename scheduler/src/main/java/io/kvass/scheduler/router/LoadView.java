package io.kvass.scheduler.router;

import io.kvass.kvpaging.PrefixCacheUpdate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * One gateway's view of every replica: the latest {@link LoadReport} of each, the prefix blocks each holds (built
 * from the reports' deltas), and the gateway's own sends that those reports do not count yet. Every gateway keeps
 * its own, fed by the same reports, so there is no central router whose loss stops routing.
 *
 * <p><b>Staleness bound:</b> a replica whose latest report arrived more than {@link RouterSettings#staleAfter()}
 * ago (on the gateway's clock, the {@code nowNanos} passed in) is not eligible for any request until a fresh report
 * arrives.
 *
 * <p><b>In-flight sends:</b> {@link #recordSend} counts each request this gateway sends; a report that says how
 * many of this gateway's requests the replica has received ({@link LoadReport#receivedFrom()}) retires exactly
 * those, and one that does not say retires all earlier sends. Until then they count as waiting requests and as the
 * KV blocks their prompts need.
 *
 * <p><b>Prefix blocks:</b> a snapshot replaces what the replica held; a delta applies only on top of the report
 * just before it ({@code seq - 1}, same epoch). Otherwise the replica's blocks are unknown (it gets no prefix
 * affinity, its load still counts) and {@link #apply} returns {@link ReportOutcome#ASK_FOR_SNAPSHOT}.
 *
 * <p>NOTE: not thread-safe: the gateway's router actor owns it. Replica slots are reused after {@link #remove}.
 */
public final class LoadView {
    private final String gatewayId;
    private final RouterSettings settings;
    private final Map<String, ReplicaState> byId = new HashMap<>();
    private ReplicaState[] slots = new ReplicaState[8];
    private int numSlots; // slots in use or freed, i.e. one past the highest ever used
    private final PrefixIndex prefixes = new PrefixIndex();
    private ReplicaState[] byIdOrder = new ReplicaState[0];

    /** @param gatewayId how this gateway is named in {@link LoadReport#receivedFrom()} */
    public LoadView(String gatewayId, RouterSettings settings) {
        this.gatewayId = Objects.requireNonNull(gatewayId, "gatewayId");
        this.settings = Objects.requireNonNull(settings, "settings");
    }

    public RouterSettings settings() {
        return settings;
    }

    /** Takes in a replica's report, received at {@code nowNanos} on this gateway's monotonic clock. */
    public ReportOutcome apply(LoadReport report, long nowNanos) {
        ReplicaState r = byId.get(report.replicaId());
        if (r == null) {
            r = add(report.replicaId());
            r.newEpoch(report.epoch());
        } else if (r.epoch != report.epoch()) {
            prefixes.clear(r.slot);
            r.newEpoch(report.epoch());
        } else if (report.seq() <= r.lastSeq) {
            return ReportOutcome.IGNORED_OLD;
        }
        r.takeLoad(report, nowNanos);
        r.acknowledge(report.receivedFrom().getOrDefault(gatewayId, r.sent));
        boolean follows = r.prefixKnown && report.seq() == r.lastSeq + 1;
        r.lastSeq = report.seq();
        PrefixCacheUpdate update = report.prefixes();
        if (update.isWellFormed() && update instanceof PrefixCacheUpdate.Snapshot s) {
            prefixes.clear(r.slot);
            addAll(r.slot, s.held());
            r.prefixKnown = true;
            return ReportOutcome.APPLIED;
        }
        if (update.isWellFormed() && follows && update instanceof PrefixCacheUpdate.Delta d) {
            long[] removed = d.removed();
            for (int i = 0; i < removed.length; i += 2) {
                prefixes.remove(r.slot, removed[i], removed[i + 1]);
            }
            addAll(r.slot, d.stored());
            return ReportOutcome.APPLIED;
        }
        if (r.prefixKnown) {
            prefixes.clear(r.slot);
            r.prefixKnown = false;
        }
        if (r.snapshotAskedAtNanos != Long.MIN_VALUE && nowNanos - r.snapshotAskedAtNanos < settings.staleAfterNanos()) {
            return ReportOutcome.APPLIED; // NOTE: asked recently; the snapshot may be on its way
        }
        r.snapshotAskedAtNanos = nowNanos;
        return ReportOutcome.ASK_FOR_SNAPSHOT;
    }

    /**
     * This gateway sent a request to the replica: it counts as one more waiting request there, needing
     * {@code blocks} KV blocks, until a report counts it.
     */
    public void recordSend(String replicaId, int blocks) {
        ReplicaState r = byId.get(replicaId);
        if (r != null) {
            r.recordSend(Math.max(0, blocks));
        }
    }

    /** As {@link #recordSend(String, int)} for a decision just taken. */
    public void recordSend(RouteDecision.Send send) {
        recordSend(send.replicaId(), send.blocksNeeded());
    }

    /** The replica left (its node left the cluster, or it was stopped): forget it. */
    public boolean remove(String replicaId) {
        ReplicaState r = byId.remove(replicaId);
        if (r == null) {
            return false;
        }
        prefixes.clear(r.slot);
        slots[r.slot] = null;
        rebuildOrder();
        return true;
    }

    public int numReplicas() {
        return byId.size();
    }

    /** Whether a report no older than the staleness bound has arrived from the replica. */
    public boolean isFresh(String replicaId, long nowNanos) {
        ReplicaState r = byId.get(replicaId);
        return r != null && isFresh(r, nowNanos);
    }

    /** This gateway's sends to the replica that its reports do not count yet. */
    public int inflight(String replicaId) {
        ReplicaState r = byId.get(replicaId);
        return r == null ? 0 : r.inflight();
    }

    /** Whether the view knows the replica's prefix blocks exactly (a snapshot and every delta since). */
    public boolean knowsPrefixesOf(String replicaId) {
        ReplicaState r = byId.get(replicaId);
        return r != null && r.prefixKnown;
    }

    /** The replica's node address, from its latest report. */
    public Optional<String> addressOf(String replicaId) {
        return Optional.ofNullable(byId.get(replicaId)).map(r -> r.address);
    }

    /** Distinct prefix blocks held by any replica (a gauge for /metrics). */
    public int numIndexedBlocks() {
        return prefixes.size();
    }

    // ---- for the policies ----

    boolean isFresh(ReplicaState r, long nowNanos) {
        return nowNanos - r.receivedAtNanos <= settings.staleAfterNanos();
    }

    /** Replicas by slot; entries may be null (freed slots). */
    ReplicaState[] slots() {
        return slots;
    }

    int numSlots() {
        return numSlots;
    }

    /** Live replicas sorted by id (a stable order for round-robin and tie-breaks). */
    ReplicaState[] byIdOrder() {
        return byIdOrder;
    }

    PrefixIndex prefixIndex() {
        return prefixes;
    }

    private ReplicaState add(String replicaId) {
        int slot = 0;
        while (slot < numSlots && slots[slot] != null) {
            slot++;
        }
        if (slot == slots.length) {
            slots = Arrays.copyOf(slots, 2 * slots.length);
        }
        ReplicaState r = new ReplicaState(replicaId, slot);
        slots[slot] = r;
        numSlots = Math.max(numSlots, slot + 1);
        byId.put(replicaId, r);
        rebuildOrder();
        return r;
    }

    private void rebuildOrder() {
        List<ReplicaState> live = new ArrayList<>(byId.values());
        live.sort(Comparator.comparing(r -> r.id));
        byIdOrder = live.toArray(ReplicaState[]::new);
    }

    private void addAll(int slot, long[] pairs) {
        for (int i = 0; i < pairs.length; i += 2) {
            prefixes.add(slot, pairs[i], pairs[i + 1]);
        }
    }
}
