package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;
import java.util.List;

/**
 * What a worker node advertises in replicated state: its cluster address and devices.
 *
 * @param address the node's cluster address ({@code pekko://kvass@host:port})
 */
public record NodeInventory(String address, List<Device> devices) implements CrossNode {
    public NodeInventory {
        devices = List.copyOf(devices);
    }

    public List<Device> devicesOf(DeviceKind kind) {
        return devices.stream().filter(d -> d.kind() == kind).toList();
    }
}
