package io.kvass.scheduler.engine;

import io.kvass.scheduler.router.LoadReport;
import io.kvass.worker.wire.CrossNode;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What a replica's engine tells every gateway: where it is ({@code engine}, death-watched by the gateways), the
 * routing report (load, adapters, prefix-cache delta; see {@link LoadReport}), and for operators its full stats and
 * adapter residency.
 */
public record ReplicaLoad(ActorRef<Engine.Command> engine, EngineIdentity identity, EngineStats stats,
                          List<AdapterResidency> adapters, LoadReport report) implements CrossNode {

    /** False while the replica drains or retires: running requests finish, new ones go elsewhere. */
    public boolean accepting() {
        return report.healthy();
    }
}
