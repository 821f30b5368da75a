package io.kvass.scheduler.router;

import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/** Picks the replica for a request among the fresh views, or none when no replica has room now. */
public interface ReplicaChooser {

    /** @param reason why this replica (PREFIX, ADAPTER, LOAD, ...), counted in /metrics */
    record Choice(ReplicaView replica, String reason) {
    }

    Optional<Choice> choose(RouterActor.RouteRequest request, List<ReplicaView> fresh);

    /**
     * The least loaded replica that accepts requests, serves the model and has room: fewer requests running,
     * waiting there or just sent than the sequences it runs at once. The rest wait at the gateway (late
     * binding), so they go to whichever replica frees first. A baseline without cache or adapter affinity.
     */
    ReplicaChooser LEAST_LOADED = (request, fresh) -> fresh.stream()
            .filter(v -> v.load().accepting() && v.load().identity().model().equals(request.model()))
            .filter(v -> !request.excluded().contains(v.load().identity().replicaId()))
            .filter(v -> v.queued() < v.load().identity().maxNumSeqs())
            .min(Comparator.comparingDouble((ReplicaView v) -> (double) v.queued() / v.load().identity().maxNumSeqs())
                    .thenComparing(v -> -v.load().stats().numFreeKvBlocks())
                    .thenComparing(v -> v.load().identity().replicaId()))
            .map(v -> new Choice(v, "LOAD"));
}
