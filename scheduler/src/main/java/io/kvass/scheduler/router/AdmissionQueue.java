package io.kvass.scheduler.router;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The requests a gateway holds until some replica has room (late binding), and the order they leave in:
 * lower {@link RouteRequest#priority()} first (vLLM's convention); within a priority, round-robin over tenants, so a
 * tenant with a thousand queued requests takes turns with one that has two; first-in first-out within a tenant (per
 * model: a tenant's request for a model without room does not hold up its requests for other models).
 *
 * <p>{@link #release} places every request that can be placed now, in that order. When a request of some model
 * cannot be placed, no later request of that model is placed in the same pass, so that neither a lower priority
 * nor a later turn takes the room the earlier one waits for (a smaller prompt might fit, but letting it pass would
 * starve large prompts). Requests of other models go on.
 *
 * <p>Bounded by {@link RouterSettings#maxWaiting()}: one more is refused with {@link Offer#QUEUE_FULL}, a value the
 * caller turns into a 429/503 answer.
 *
 * <p>NOTE: not thread-safe: the gateway's router actor owns it. Aborted requests are dropped lazily (when they reach
 * the head of their tenant's queue), so {@link #abort} is O(1).
 */
public final class AdmissionQueue {

    /** The answer to {@link #offer}. */
    public enum Offer {
        QUEUED,
        /** {@link RouterSettings#maxWaiting()} requests are held already. */
        QUEUE_FULL,
        /** A request with this id is held already. */
        DUPLICATE
    }

    /** A request that left the queue, and where it goes; the view has recorded the send. */
    public record Placed(RouteRequest request, RouteDecision.Send send) {
    }

    private static final class Held {
        final RouteRequest request;
        final long order;
        boolean aborted;

        Held(RouteRequest request, long order) {
            this.request = request;
            this.order = order;
        }
    }

    /** One tenant's requests of one priority: a FIFO per model (a model without room holds up only its own). */
    private static final class TenantQueue {
        final LinkedHashMap<String, ArrayDeque<Held>> byModel = new LinkedHashMap<>(4);

        /** The oldest live request whose model is not blocked, or null; drops aborted heads and empty FIFOs. */
        Held next(Set<String> blockedModels, AdmissionQueue owner) {
            Held best = null;
            var it = byModel.entrySet().iterator();
            while (it.hasNext()) {
                var e = it.next();
                Held head = owner.liveHead(e.getValue());
                if (head == null) {
                    it.remove();
                } else if (!blockedModels.contains(e.getKey()) && (best == null || head.order < best.order)) {
                    best = head;
                }
            }
            return best;
        }

        boolean isEmpty() {
            return byModel.isEmpty();
        }
    }

    /** One priority level: its tenants in turn order (the tenant served last is at the end). */
    private static final class Level {
        final LinkedHashMap<String, TenantQueue> tenants = new LinkedHashMap<>();
    }

    private final int maxWaiting;
    private final TreeMap<Integer, Level> levels = new TreeMap<>();
    private final Map<String, Held> byId = new HashMap<>();
    private int numAborted; // still in a tenant's queue
    private long arrivals;

    public AdmissionQueue(int maxWaiting) {
        if (maxWaiting < 0) {
            throw new IllegalArgumentException("maxWaiting=" + maxWaiting);
        }
        this.maxWaiting = maxWaiting;
    }

    /** Held requests (aborted ones excluded). */
    public int size() {
        return byId.size();
    }

    public boolean contains(String requestId) {
        return byId.containsKey(requestId);
    }

    public Offer offer(RouteRequest request) {
        if (byId.containsKey(request.requestId())) {
            return Offer.DUPLICATE;
        }
        if (byId.size() >= maxWaiting) {
            return Offer.QUEUE_FULL;
        }
        Held held = new Held(request, arrivals++);
        byId.put(request.requestId(), held);
        levels.computeIfAbsent(request.priority(), p -> new Level()).tenants
                .computeIfAbsent(request.tenant(), t -> new TenantQueue()).byModel
                .computeIfAbsent(request.model(), m -> new ArrayDeque<>()).addLast(held);
        return Offer.QUEUED;
    }

    /** The client went away (or its wait timed out): the request will not be placed. */
    public boolean abort(String requestId) {
        Held held = byId.remove(requestId);
        if (held == null) {
            return false;
        }
        held.aborted = true;
        if (++numAborted > Math.max(1024, byId.size())) {
            sweepAborted(); // NOTE: keeps memory bounded when a blocked model's clients keep giving up
        }
        return true;
    }

    private void sweepAborted() {
        for (Level level : levels.values()) {
            for (TenantQueue tenant : level.tenants.values()) {
                tenant.byModel.values().forEach(q -> q.removeIf(h -> h.aborted));
                tenant.byModel.values().removeIf(ArrayDeque::isEmpty);
            }
            level.tenants.values().removeIf(TenantQueue::isEmpty);
        }
        levels.values().removeIf(l -> l.tenants.isEmpty());
        numAborted = 0;
    }

    /**
     * Places every held request that can be placed now, in priority, tenant-turn and arrival order (see the class
     * comment), recording each send in the view so the next pick sees it.
     */
    public List<Placed> release(RoutingPolicy policy, LoadView view, long nowNanos) {
        List<Placed> placed = new ArrayList<>();
        Set<String> blockedModels = new HashSet<>();
        var levelIt = levels.values().iterator();
        while (levelIt.hasNext()) {
            Level level = levelIt.next();
            releaseLevel(level, policy, view, nowNanos, blockedModels, placed);
            if (level.tenants.isEmpty()) {
                levelIt.remove();
            }
        }
        return placed;
    }

    /** Rounds over the level's tenants, one request each per round, until a round places nothing. */
    private void releaseLevel(Level level, RoutingPolicy policy, LoadView view, long nowNanos,
                              Set<String> blockedModels, List<Placed> placed) {
        boolean progress = true;
        while (progress && !level.tenants.isEmpty()) {
            progress = false;
            List<String> served = new ArrayList<>();
            var it = level.tenants.entrySet().iterator();
            while (it.hasNext()) {
                var entry = it.next();
                TenantQueue tenant = entry.getValue();
                // NOTE: the tenant's turn goes to its oldest request of a model that has room, if any
                for (Held head = tenant.next(blockedModels, this); head != null; head = tenant.next(blockedModels, this)) {
                    if (policy.pick(head.request, view, nowNanos) instanceof RouteDecision.Send send) {
                        tenant.byModel.get(head.request.model()).pollFirst();
                        byId.remove(head.request.requestId());
                        view.recordSend(send);
                        placed.add(new Placed(head.request, send));
                        served.add(entry.getKey());
                        progress = true;
                        break;
                    }
                    blockedModels.add(head.request.model());
                }
                if (tenant.isEmpty()) {
                    it.remove();
                }
            }
            // NOTE: served tenants go to the back in the order served; a tenant that could not go keeps its turn
            for (String name : served) {
                TenantQueue tenant = level.tenants.remove(name);
                if (tenant != null && tenant.next(Set.of(), this) != null) { // NOTE: next drops what emptied
                    level.tenants.put(name, tenant);
                }
            }
        }
    }

    private Held liveHead(ArrayDeque<Held> queue) {
        while (!queue.isEmpty() && queue.peekFirst().aborted) {
            queue.pollFirst();
            numAborted--;
        }
        return queue.peekFirst();
    }
}
