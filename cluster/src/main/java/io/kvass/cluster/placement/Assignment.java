package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;
import java.util.List;

/** Where one replica runs: its node and the devices it holds there (never shared with another replica). */
public record Assignment(String replicaId, String deployment, int index, String node, List<Integer> devices)
        implements CrossNode {
    public Assignment {
        devices = List.copyOf(devices);
    }
}
