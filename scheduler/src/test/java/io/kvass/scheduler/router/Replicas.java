package io.kvass.scheduler.router;

import io.kvass.kvpaging.BlockHasher;
import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.PrefixCacheUpdate;
import io.kvass.kvpaging.PromptBlockHashes;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.IntStream;

/** Builds load reports and requests for the router's tests. */
final class Replicas {
    static final String MODEL = "llama";
    static final int BS = 16;
    static final long MS = 1_000_000L;
    static final BlockHasher HASHER = new BlockHasher();

    private Replicas() {
    }

    /** A prompt of {@code n} tokens starting with {@code stem}'s tokens. */
    static int[] prompt(int stem, int n) {
        return IntStream.range(0, n).map(i -> stem * 100_000 + i).toArray();
    }

    static RouteRequest request(String id, int[] prompt) {
        return request(id, "t", 0, CacheScope.BASE, prompt);
    }

    static RouteRequest request(String id, String tenant, int priority, CacheScope scope, int[] prompt) {
        return RouteRequest.of(id, tenant, priority, MODEL, scope, prompt, BS, HASHER);
    }

    /** The hashes a replica stores once it has computed {@code prompt} under {@code scope}. */
    static long[] cached(CacheScope scope, int[] prompt) {
        return PromptBlockHashes.of(HASHER, prompt, prompt.length, BS, scope);
    }

    /** A mutable report: set what a test needs, then {@link #build()}. */
    static final class Report {
        String id;
        String model = MODEL;
        long epoch = 1;
        long seq = 0;
        int blockSize = BS;
        int free = 1000;
        int total = 1000;
        int running = 0;
        int waiting = 0;
        int maxNumSeqs = 64;
        boolean healthy = true;
        Map<Long, AdapterTier> adapters = new HashMap<>();
        Map<String, Long> receivedFrom = new HashMap<>();
        PrefixCacheUpdate prefixes = new PrefixCacheUpdate.Snapshot(new long[0]);

        Report(String id) {
            this.id = id;
        }

        Report seq(long s) {
            seq = s;
            return this;
        }

        Report load(int running, int waiting) {
            this.running = running;
            this.waiting = waiting;
            return this;
        }

        Report free(int free) {
            this.free = free;
            return this;
        }

        Report holding(long[] hashes) {
            prefixes = new PrefixCacheUpdate.Snapshot(hashes);
            return this;
        }

        Report delta(long[] stored, long[] removed) {
            prefixes = new PrefixCacheUpdate.Delta(stored, removed);
            return this;
        }

        Report adapter(long id, AdapterTier tier) {
            adapters.put(id, tier);
            return this;
        }

        Report unhealthy() {
            healthy = false;
            return this;
        }

        LoadReport build() {
            return new LoadReport(id, "pekko://kvass@10.0.0.1:2551", model, epoch, seq, 0, blockSize, free, total,
                    running, waiting, maxNumSeqs, adapters, receivedFrom, prefixes, healthy);
        }
    }

    static Report report(String id) {
        return new Report(id);
    }
}
