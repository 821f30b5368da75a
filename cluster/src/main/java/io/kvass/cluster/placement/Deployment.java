package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;
import java.util.Objects;

/**
 * A model served by the cluster: how many replicas, on what, and how each replica is configured.
 *
 * @param name              the served model name (replica ids are {@code name-index})
 * @param devicesPerReplica devices one replica takes on one node (its tensor-parallel size on GPUs)
 * @param settings          the replica's serve options as a HOCON/JSON object of {@code kvass} keys
 *                          ({@code model}, {@code max-num-seqs}, {@code kv-cache-memory}, {@code lora}, ...),
 *                          layered over the hosting node's own {@code kvass} section; text, so it crosses
 *                          nodes and survives in replicated state as the operator wrote it
 */
public record Deployment(String name, int replicas, int devicesPerReplica, DeviceKind device, String settings)
        implements CrossNode {

    public Deployment {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(settings, "settings");
        if (name.isBlank()) {
            throw new IllegalArgumentException("a deployment needs a model name");
        }
        if (replicas < 0) {
            throw new IllegalArgumentException("replicas must be at least 0, got " + replicas);
        }
        if (devicesPerReplica < 1) {
            throw new IllegalArgumentException("devices-per-replica must be at least 1, got " + devicesPerReplica);
        }
    }

    public String replicaId(int index) {
        return name + "-" + index;
    }

    public Deployment withReplicas(int n) {
        return new Deployment(name, n, devicesPerReplica, device, settings);
    }
}
