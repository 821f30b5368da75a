package io.kvass.cluster.node;

import io.kvass.cluster.placement.NodeInventory;
import io.kvass.cluster.placement.PlacementCoordinator;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.ddata.LWWMap;
import org.apache.pekko.cluster.ddata.SelfUniqueAddress;
import org.apache.pekko.cluster.ddata.typed.javadsl.DistributedData;
import org.apache.pekko.cluster.ddata.typed.javadsl.Replicator;
import org.apache.pekko.cluster.ddata.typed.javadsl.ReplicatorMessageAdapter;

/**
 * A worker node's advertisement of its devices in replicated state (gossiped to every node, read by the
 * placement coordinator wherever it runs). Written once at start; the node's address keys it.
 */
final class InventoryPublisher {
    private InventoryPublisher() {
    }

    static Behavior<Object> create(NodeInventory inventory) {
        return Behaviors.setup(ctx -> DistributedData.withReplicatorMessageAdapter(
                (ReplicatorMessageAdapter<Object, LWWMap<String, NodeInventory>> data) -> {
                    SelfUniqueAddress self = DistributedData.get(ctx.getSystem()).selfUniqueAddress();
                    data.askUpdate(r -> new Replicator.Update<>(PlacementCoordinator.NODES, LWWMap.create(),
                            Replicator.writeLocal(), r, map -> map.put(self, inventory.address(), inventory)), rsp -> rsp);
                    ctx.getLog().info("devices of {}: {}", inventory.address(), inventory.devices());
                    return Behaviors.ignore();
                }));
    }
}
