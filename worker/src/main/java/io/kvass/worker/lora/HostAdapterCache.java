package io.kvass.worker.lora;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Optional;
import java.util.function.LongPredicate;

/**
 * The host-memory tier: decoded adapters by id, least recently used first out. Eviction prefers
 * adapters nobody is waiting for; those are only re-read from disk on their next request.
 * NOTE: not thread-safe; {@link AdapterManager} guards it.
 */
final class HostAdapterCache {
    private final int capacity;
    private final LinkedHashMap<Long, LoraWeights> lru = new LinkedHashMap<>(16, 0.75f, true);

    HostAdapterCache(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("the host adapter cache needs room for at least one adapter");
        }
        this.capacity = capacity;
    }

    /** The adapter, counted as a use. */
    Optional<LoraWeights> get(long id) {
        return Optional.ofNullable(lru.get(id));
    }

    boolean contains(long id) {
        return lru.containsKey(id);
    }

    /**
     * Adds (or refreshes) an adapter; returns the ids evicted to stay within capacity, the least
     * recently used among those not {@code wanted}, else the least recently used of all.
     */
    List<Long> put(long id, LoraWeights weights, LongPredicate wanted) {
        lru.put(id, weights);
        List<Long> evicted = new java.util.ArrayList<>();
        while (lru.size() > capacity) {
            long victim = pick(id, wanted);
            lru.remove(victim);
            evicted.add(victim);
        }
        return evicted;
    }

    private long pick(long keep, LongPredicate wanted) {
        long fallback = -1;
        for (Iterator<Long> it = lru.keySet().iterator(); it.hasNext(); ) {
            long id = it.next();
            if (id == keep) {
                continue;
            }
            if (!wanted.test(id)) {
                return id;
            }
            if (fallback == -1) {
                fallback = id;
            }
        }
        return fallback;
    }

    void remove(long id) {
        lru.remove(id);
    }

    /** Ids from least to most recently used. */
    List<Long> ids() {
        return List.copyOf(lru.keySet());
    }

    int size() {
        return lru.size();
    }
}
