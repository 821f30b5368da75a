package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;
import java.util.List;

/**
 * What the placement coordinator knows: the deployments, where their replicas run, what waits for room, the
 * worker nodes' devices and which nodes drain.
 */
public record PlacementState(List<Deployment> deployments, List<Assignment> assignments, List<String> pending,
                             List<NodeInventory> nodes, List<String> draining) implements CrossNode {
    public PlacementState {
        deployments = List.copyOf(deployments);
        assignments = List.copyOf(assignments);
        pending = List.copyOf(pending);
        nodes = List.copyOf(nodes);
        draining = List.copyOf(draining);
    }
}
