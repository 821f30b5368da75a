package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;

/**
 * One device a worker node offers to replicas: a GPU (index, name, memory) or one unit of a CPU node's
 * declared budget ({@code kvass.node.devices}).
 */
public record Device(int index, DeviceKind kind, String name, long totalBytes, long freeBytes) implements CrossNode {
}
