package io.kvass.scheduler.router;

import io.kvass.kvpaging.CacheScope;

/**
 * The cluster's default policy: among eligible replicas ({@link RoutingPolicy}), the best score
 * <pre>
 *   prefixWeight  * (leading prompt tokens the replica holds) / (prompt tokens)
 * + adapterWeight * (1 on a device slot, HOST_TIER in host memory, 0 on disk; 0 for base-model requests)
 * + freeKvWeight  * (free KV blocks less this gateway's uncounted sends) / (total KV blocks)
 * + queueWeight   * maxNumSeqs / (maxNumSeqs + running + waiting + uncounted sends)
 * </pre>
 * unless that replica is too busy: when its load exceeds the least-loaded eligible replica's by more than
 * {@link RouterSettings#balanceAbsThreshold()} and by more than the factor
 * {@link RouterSettings#balanceRelThreshold()}, affinity is ignored and the least-loaded replica gets the request
 * ({@link RouteDecision.Reason#SPILL}), as SGLang's cache-aware router does, so one hot prefix cannot pile every
 * request onto one replica.
 *
 * <p>Ties go to the lower load, then the smaller replica id, so equal views give equal decisions on every gateway.
 * The reason names the affinity that set the winner apart from the other eligible replicas (see
 * {@link RouteDecision.Reason}).
 *
 * <p>Cost: one prefix-index lookup per prompt block (not per block per replica, see {@link PrefixIndex}), then one
 * pass over the replicas reading primitives; nothing allocated but the decision.
 */
public final class PrefixAwarePolicy implements RoutingPolicy {
    private int[] matched = new int[64];
    private long[] active = new long[1];

    @Override
    public RouteDecision pick(RouteRequest request, LoadView view, long nowNanos) {
        RouterSettings s = view.settings();
        PrefixIndex index = view.prefixIndex();
        if (matched.length < view.numSlots()) {
            matched = new int[Math.max(view.numSlots(), 2 * matched.length)];
        }
        if (active.length < index.words()) {
            active = new long[index.words()];
        }
        index.matchLeading(request.blockHashes(), matched, active);
        boolean withAdapter = request.adapterId() != CacheScope.BASE_MODEL;
        ReplicaState[] slots = view.slots();
        ReplicaState best = null;
        double bestScore = 0;
        ReplicaState least = null;
        double leastScore = 0;
        boolean anyServes = false;
        int maxCached = 0;
        int minCached = Integer.MAX_VALUE;
        double maxTier = 0;
        double minTier = 1;
        for (int slot = 0; slot < view.numSlots(); slot++) {
            ReplicaState r = slots[slot];
            if (r == null || !Eligibility.serves(r, request, view, nowNanos)) {
                continue;
            }
            anyServes = true;
            int cached = r.prefixKnown && r.blockSize == request.blockSize() ? matched[slot] : 0;
            if (!Eligibility.hasRoom(r, request, cached, s)) {
                continue;
            }
            double tier = withAdapter ? r.adapterTier(request.adapterId()) : 0;
            int load = r.load();
            double score = s.prefixWeight() * cached * request.blockSize() / request.promptTokens()
                    + s.adapterWeight() * tier
                    + s.freeKvWeight() * Math.max(0, r.availableBlocks()) / r.totalKvBlocks
                    + s.queueWeight() * r.maxNumSeqs / (r.maxNumSeqs + load);
            if (best == null || better(score, load, r, bestScore, best.load(), best)) {
                best = r;
                bestScore = score;
            }
            if (least == null || lessLoaded(load, score, r, least.load(), leastScore, least)) {
                least = r;
                leastScore = score;
            }
            maxCached = Math.max(maxCached, cached);
            minCached = Math.min(minCached, cached);
            maxTier = Math.max(maxTier, tier);
            minTier = Math.min(minTier, tier);
        }
        if (best == null) {
            return new RouteDecision.Hold(anyServes ? RouteDecision.Why.NO_ROOM : RouteDecision.Why.NO_REPLICA);
        }
        if (best != least && imbalanced(best.load(), least.load(), s)) {
            return send(request, least, RouteDecision.Reason.SPILL);
        }
        int cached = cachedOn(best, request);
        RouteDecision.Reason reason;
        if (cached == maxCached && maxCached > minCached) {
            reason = RouteDecision.Reason.PREFIX;
        } else if (withAdapter && best.adapterTier(request.adapterId()) == maxTier && maxTier > minTier) {
            reason = RouteDecision.Reason.ADAPTER;
        } else {
            reason = RouteDecision.Reason.LOAD;
        }
        return send(request, best, reason);
    }

    /** SGLang's rule: both the absolute and the relative difference exceed their thresholds. */
    static boolean imbalanced(int load, int leastLoad, RouterSettings s) {
        return load - leastLoad > s.balanceAbsThreshold() && load > s.balanceRelThreshold() * leastLoad;
    }

    private RouteDecision.Send send(RouteRequest request, ReplicaState r, RouteDecision.Reason reason) {
        int cached = cachedOn(r, request);
        return new RouteDecision.Send(r.id, reason, cached * request.blockSize(),
                request.blocksNeeded(cached, r.blockSize));
    }

    private int cachedOn(ReplicaState r, RouteRequest request) {
        return r.prefixKnown && r.blockSize == request.blockSize() ? matched[r.slot] : 0;
    }

    private static boolean better(double score, int load, ReplicaState r, double otherScore, int otherLoad,
                                  ReplicaState other) {
        if (score != otherScore) {
            return score > otherScore;
        }
        if (load != otherLoad) {
            return load < otherLoad;
        }
        return r.id.compareTo(other.id) < 0;
    }

    private static boolean lessLoaded(int load, double score, ReplicaState r, int otherLoad, double otherScore,
                                      ReplicaState other) {
        if (load != otherLoad) {
            return load < otherLoad;
        }
        if (score != otherScore) {
            return score > otherScore;
        }
        return r.id.compareTo(other.id) < 0;
    }
}
