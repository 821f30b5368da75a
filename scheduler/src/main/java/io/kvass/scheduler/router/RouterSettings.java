package io.kvass.scheduler.router;

import java.time.Duration;
import java.util.Objects;

/**
 * How a gateway's router places requests. {@link #defaults()} says why each default is what it is.
 *
 * @param reportInterval      how often a replica sends its {@link LoadReport} (the replica's timer reads it)
 * @param staleAfter          a replica whose latest report arrived longer ago than this is not routed to
 *                            (measured on the gateway's clock from when the report arrived: nodes' clocks differ)
 * @param maxQueuedPerReplica a replica has room while its waiting requests plus this gateway's sends it has not
 *                            yet reported stay below this; beyond it requests wait at the gateway (late binding)
 * @param maxWaiting          requests the gateway holds at most; one more is answered "queue full"
 * @param prefixWeight        weight of the prompt's cached fraction (leading blocks held, in tokens, over the
 *                            prompt's tokens), 0..1
 * @param adapterWeight       weight of the adapter's residency: 1 on a device slot, {@link #HOST_TIER} in host
 *                            memory, 0 on disk (base-model requests: 0 everywhere)
 * @param freeKvWeight        weight of the replica's free KV fraction after this gateway's unreported sends, 0..1
 * @param queueWeight         weight of {@code maxNumSeqs / (maxNumSeqs + load)}, 1 when idle, 1/2 at a full batch;
 *                            load = running + waiting + unreported sends
 * @param balanceAbsThreshold with {@code balanceRelThreshold}: when the best-scored replica's load exceeds the
 *                            least-loaded one's by more than this AND by more than that factor, affinity is ignored
 *                            and the least-loaded replica is taken (SGLang's {@code balance_abs_threshold})
 * @param balanceRelThreshold see {@code balanceAbsThreshold} (SGLang's {@code balance_rel_threshold})
 */
public record RouterSettings(Duration reportInterval, Duration staleAfter, int maxQueuedPerReplica, int maxWaiting,
                             double prefixWeight, double adapterWeight, double freeKvWeight, double queueWeight,
                             int balanceAbsThreshold, double balanceRelThreshold) {

    /** Residency score of an adapter held in host memory: a copy to the device away (disk is 0, device 1). */
    public static final double HOST_TIER = 0.5;

    public RouterSettings {
        Objects.requireNonNull(reportInterval, "reportInterval");
        Objects.requireNonNull(staleAfter, "staleAfter");
        if (reportInterval.isNegative() || reportInterval.isZero() || staleAfter.compareTo(reportInterval) < 0) {
            throw new IllegalArgumentException("need 0 < reportInterval <= staleAfter, got " + reportInterval
                    + " and " + staleAfter);
        }
        if (maxQueuedPerReplica < 1 || maxWaiting < 0 || balanceAbsThreshold < 0 || balanceRelThreshold < 1) {
            throw new IllegalArgumentException("max-queued-per-replica=" + maxQueuedPerReplica + " max-waiting="
                    + maxWaiting + " balance-abs-threshold=" + balanceAbsThreshold + " balance-rel-threshold="
                    + balanceRelThreshold);
        }
        for (double w : new double[] {prefixWeight, adapterWeight, freeKvWeight, queueWeight}) {
            if (!(w >= 0) || Double.isInfinite(w)) {
                throw new IllegalArgumentException("router weights must be finite and >= 0");
            }
        }
    }

    /**
     * The defaults, and why:
     * <ul>
     * <li>report every 100 ms: a decode step is ~10-50 ms, so a report is a few steps old at most; 64 replicas
     *     then send a gateway 640 small messages a second (deltas of the ~60 blocks a step fills);
     * <li>stale after 1 s: ten missed reports, beyond a long GC pause, is a replica that stopped (or a partition);
     *     membership events usually say so sooner, this bounds the wait when they do not;
     * <li>8 queued per replica: enough that a replica's next step never waits for the gateway (a report
     *     interval's arrivals at a few requests per step), few enough that requests still wait where the choice
     *     can be made late, at the gateway, rather than in one replica's queue;
     * <li>4,096 held at most: a minute of a busy cluster's arrivals; beyond that clients should see back-pressure;
     * <li>weights prefix 2, adapter 1, free KV 0.5, queue 1: a fully cached prompt outweighs everything else (it
     *     saves the whole prefill); an adapter on the device saves its upload (~ a 50 % cached prompt); queue depth
     *     separates an idle replica from one at a full batch by 0.5 (~ a 25 % cached prompt), free KV by less
     *     because the room check already excludes full replicas;
     * <li>balance 32 and 1.5: SGLang's default absolute threshold (32); its relative default (1.0001) leaves the
     *     decision to the absolute one, 1.5 keeps large replicas (hundreds running) from spilling over a few tens.
     * </ul>
     */
    public static RouterSettings defaults() {
        return new RouterSettings(Duration.ofMillis(100), Duration.ofSeconds(1), 8, 4096, 2.0, 1.0, 0.5, 1.0, 32, 1.5);
    }

    public RouterSettings withStaleAfter(Duration d) {
        return new RouterSettings(reportInterval, d, maxQueuedPerReplica, maxWaiting, prefixWeight, adapterWeight,
                freeKvWeight, queueWeight, balanceAbsThreshold, balanceRelThreshold);
    }

    public RouterSettings withMaxQueuedPerReplica(int n) {
        return new RouterSettings(reportInterval, staleAfter, n, maxWaiting, prefixWeight, adapterWeight,
                freeKvWeight, queueWeight, balanceAbsThreshold, balanceRelThreshold);
    }

    public RouterSettings withMaxWaiting(int n) {
        return new RouterSettings(reportInterval, staleAfter, maxQueuedPerReplica, n, prefixWeight, adapterWeight,
                freeKvWeight, queueWeight, balanceAbsThreshold, balanceRelThreshold);
    }

    public RouterSettings withBalance(int absThreshold, double relThreshold) {
        return new RouterSettings(reportInterval, staleAfter, maxQueuedPerReplica, maxWaiting, prefixWeight,
                adapterWeight, freeKvWeight, queueWeight, absThreshold, relThreshold);
    }

    long staleAfterNanos() {
        return staleAfter.toNanos();
    }
}
