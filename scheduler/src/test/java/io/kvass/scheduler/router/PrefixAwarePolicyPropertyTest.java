package io.kvass.scheduler.router;

import static io.kvass.scheduler.router.Replicas.report;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.PrefixCacheUpdate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The policy against a plain re-statement of its rules over per-replica hash sets: random replicas joining,
 * leaving, reporting snapshots and deltas, random requests. Catches what the shared index and slot reuse could get
 * wrong.
 */
class PrefixAwarePolicyPropertyTest {
    private static final int STEMS = 6;
    private final RouterSettings settings = RouterSettings.defaults().withBalance(6, 1.5);

    /** What a replica reported, kept plainly. */
    private static final class Known {
        final Set<List<Long>> held = new HashSet<>();
        Replicas.Report report;
    }

    private static List<Long> key(long[] pairs, int i) {
        return List.of(pairs[2 * i], pairs[2 * i + 1]);
    }

    @Test
    void agreesWithAPlainStatementOfTheRules() {
        Random random = new Random(99);
        long[][] stems = new long[STEMS][];
        int[][] prompts = new int[STEMS][];
        for (int s = 0; s < STEMS; s++) {
            prompts[s] = Replicas.prompt(s, 16 * 12 + 1);
            stems[s] = Replicas.cached(CacheScope.BASE, prompts[s]);
        }
        LoadView view = new LoadView("gw", settings);
        PrefixAwarePolicy policy = new PrefixAwarePolicy();
        Map<String, Known> known = new TreeMap<>();
        int spills = 0;
        int prefixes = 0;
        int holds = 0;
        for (int step = 0; step < 4000; step++) {
            String id = "r" + random.nextInt(12);
            int op = random.nextInt(10);
            if (op == 0 && known.containsKey(id)) {
                view.remove(id);
                known.remove(id);
            } else if (op < 6) {
                Known k = known.computeIfAbsent(id, x -> new Known());
                Replicas.Report r = report(id).load(random.nextInt(20), random.nextInt(3)).free(random.nextInt(20));
                r.adapters.put(1L, AdapterTier.values()[random.nextInt(2)]);
                r.seq = k.report == null ? 0 : k.report.seq + 1;
                // a random prefix of a random stem stored, a random one removed (or a whole snapshot)
                long[] stem = stems[random.nextInt(STEMS)];
                int n = random.nextInt(13);
                long[] stored = java.util.Arrays.copyOf(stem, 2 * n);
                long[] gone = stems[random.nextInt(STEMS)];
                int from = random.nextInt(13);
                long[] removed = java.util.Arrays.copyOfRange(gone, 2 * from, gone.length);
                if (k.report == null || random.nextInt(8) == 0) {
                    k.held.clear();
                    r.prefixes = new PrefixCacheUpdate.Snapshot(stored);
                } else {
                    for (int i = 0; i < removed.length / 2; i++) {
                        k.held.remove(key(removed, i));
                    }
                    Set<List<Long>> removedSet = new HashSet<>();
                    for (int i = 0; i < removed.length / 2; i++) {
                        removedSet.add(key(removed, i));
                    }
                    List<Long> storedList = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        if (!removedSet.contains(key(stored, i))) { // a delta's lists are disjoint
                            storedList.add(stored[2 * i]);
                            storedList.add(stored[2 * i + 1]);
                        }
                    }
                    stored = storedList.stream().mapToLong(Long::longValue).toArray();
                    r.prefixes = new PrefixCacheUpdate.Delta(stored, removed);
                }
                for (int i = 0; i < stored.length / 2; i++) {
                    k.held.add(key(stored, i));
                }
                k.report = r;
                assertEquals(ReportOutcome.APPLIED, view.apply(r.build(), 0));
            } else {
                int s = random.nextInt(STEMS);
                RouteRequest req = Replicas.request("q" + step, "t", 0, random.nextBoolean() ? new CacheScope(1, "")
                        : CacheScope.BASE, prompts[s]);
                // adapter 1 and the base model hash differently: only base requests can match the stems
                RouteDecision got = policy.pick(req, view, 0);
                RouteDecision expected = expected(req, known);
                assertEquals(expected, got, "step " + step);
                switch (got) {
                    case RouteDecision.Send send when send.reason() == RouteDecision.Reason.SPILL -> spills++;
                    case RouteDecision.Send send when send.reason() == RouteDecision.Reason.PREFIX -> prefixes++;
                    case RouteDecision.Hold hold -> holds++;
                    default -> { }
                }
            }
        }
        assertTrue(spills > 20 && prefixes > 100 && holds > 5, spills + " spills, " + prefixes + " prefix, " + holds + " holds");
    }

    private RouteDecision expected(RouteRequest req, Map<String, Known> known) {
        String best = null;
        double bestScore = 0;
        int bestLoad = 0;
        String least = null;
        double leastScore = 0;
        int leastLoad = 0;
        int maxCached = 0;
        int minCached = Integer.MAX_VALUE;
        double maxTier = 0;
        double minTier = 1;
        boolean any = false;
        for (var e : known.entrySet()) { // sorted by id: ties go to the first
            Replicas.Report r = e.getValue().report;
            any = true;
            int cached = 0;
            while (cached < req.blockHashes().length / 2 && e.getValue().held.contains(key(req.blockHashes(), cached))) {
                cached++;
            }
            int needed = Math.ceilDiv(req.promptTokens(), 16) - cached;
            if (r.waiting >= settings.maxQueuedPerReplica() || r.free < needed) {
                continue;
            }
            double tier = req.adapterId() == 0 ? 0 : r.adapters.get(1L) == AdapterTier.DEVICE ? 1 : 0.5;
            int load = r.running + r.waiting;
            double score = 2.0 * cached * 16 / req.promptTokens() + tier + 0.5 * r.free / r.total
                    + (double) r.maxNumSeqs / (r.maxNumSeqs + load);
            if (best == null || score > bestScore || score == bestScore && load < bestLoad) {
                best = e.getKey();
                bestScore = score;
                bestLoad = load;
            }
            if (least == null || load < leastLoad || load == leastLoad && score > leastScore) {
                least = e.getKey();
                leastScore = score;
                leastLoad = load;
            }
            maxCached = Math.max(maxCached, cached);
            minCached = Math.min(minCached, cached);
            maxTier = Math.max(maxTier, tier);
            minTier = Math.min(minTier, tier);
        }
        if (best == null) {
            return new RouteDecision.Hold(any ? RouteDecision.Why.NO_ROOM : RouteDecision.Why.NO_REPLICA);
        }
        String chosen = best;
        RouteDecision.Reason reason;
        if (!best.equals(least) && bestLoad - leastLoad > 6 && bestLoad > 1.5 * leastLoad) {
            chosen = least;
            reason = RouteDecision.Reason.SPILL;
        } else {
            int cached = cachedOn(known.get(best), req);
            double tier = req.adapterId() == 0 ? 0 : known.get(best).report.adapters.get(1L) == AdapterTier.DEVICE ? 1 : 0.5;
            reason = cached == maxCached && maxCached > minCached ? RouteDecision.Reason.PREFIX
                    : req.adapterId() != 0 && tier == maxTier && maxTier > minTier ? RouteDecision.Reason.ADAPTER
                    : RouteDecision.Reason.LOAD;
        }
        int cached = cachedOn(known.get(chosen), req);
        return new RouteDecision.Send(chosen, reason, 16 * cached, Math.ceilDiv(req.promptTokens(), 16) - cached);
    }

    private static int cachedOn(Known k, RouteRequest req) {
        int cached = 0;
        while (cached < req.blockHashes().length / 2 && k.held.contains(key(req.blockHashes(), cached))) {
            cached++;
        }
        return cached;
    }
}
