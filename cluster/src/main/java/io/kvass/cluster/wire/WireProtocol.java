package io.kvass.cluster.wire;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kvass.cluster.node.ReplicaHost;
import io.kvass.cluster.placement.AdminReply;
import io.kvass.cluster.placement.Assignment;
import io.kvass.cluster.placement.Deployment;
import io.kvass.cluster.placement.NodeInventory;
import io.kvass.cluster.placement.PlacementCoordinator;
import io.kvass.cluster.placement.PlacementState;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.EngineStats;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.kvass.scheduler.router.LoadReport;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.ArrayList;
import java.util.List;

/**
 * The roots of every protocol whose messages cross nodes. A new protocol adds its root here; its
 * {@link io.kvass.worker.wire.CrossNode} messages and everything they carry are then registered by
 * {@link WireRegistry}. Forgetting it fails {@code CrossNodeRoundTripTest}.
 */
public final class WireProtocol {
    /**
     * Every cross-node message goes through our Kryo serializer; Java serialization is off, so a message that
     * is not {@code CrossNode} fails at its first remote send instead of crossing slowly and unversioned.
     */
    public static final Config PEKKO_CONFIG = ConfigFactory.parseString("""
            pekko.actor {
              allow-java-serialization = off
              serializers { kvass-kryo = "io.kvass.cluster.wire.KryoSerializer" }
              serialization-bindings { "io.kvass.worker.wire.CrossNode" = kvass-kryo }
            }
            """);

    private WireProtocol() {
    }

    public static List<Class<?>> roots() {
        List<Class<?>> roots = new ArrayList<>(List.of(Engine.Command.class, Engine.Event.class, EngineStats.class,
                ReplicaLoad.class, LoadReport.class, StepPlan.class, StepResult.class, ReplicaHost.Command.class,
                PlacementCoordinator.Command.class, PlacementState.class, AdminReply.class, Deployment.class,
                NodeInventory.class, Assignment.class));
        return roots;
    }

    public static List<Class<?>> classes() {
        return WireRegistry.reachableFrom(roots());
    }
}
