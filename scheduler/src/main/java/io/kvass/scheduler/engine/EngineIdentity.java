package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;

/**
 * Who an engine is, for reports and logs.
 *
 * @param replicaId the replica's entity id ({@code model-index})
 * @param model     the served model name
 * @param node      the cluster address of the node it runs on
 * @param maxNumSeqs how many sequences it runs at once (the router's measure of room)
 */
public record EngineIdentity(String replicaId, String model, String node, int maxNumSeqs) implements CrossNode {

    /** An engine outside any cluster (offline, tests). */
    public static EngineIdentity local(String model, int maxNumSeqs) {
        return new EngineIdentity(model + "-0", model, "local", maxNumSeqs);
    }
}
