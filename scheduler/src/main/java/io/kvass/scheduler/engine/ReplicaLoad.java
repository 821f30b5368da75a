package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What a replica's engine tells every gateway, periodically: where it is, how loaded it is, and whether it
 * takes new requests. Gateways route by these reports and death-watch {@code engine}.
 *
 * @param adapters the replica's LoRA adapters and their tiers (the router prefers a replica holding the adapter)
 * @param seq      increases with every report of this engine (a gateway ignores an older one)
 * @param accepting false while the replica drains or retires: running requests finish, new ones go elsewhere
 */
public record ReplicaLoad(ActorRef<Engine.Command> engine, EngineIdentity identity, long seq, long timeMillis,
                          EngineStats stats, List<AdapterResidency> adapters,
                          boolean accepting) implements CrossNode {
}
