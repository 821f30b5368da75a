package io.kvass.cluster.node;

import io.kvass.scheduler.engine.Engine;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Model replicas as Cluster Sharding entities of type {@code "replica"}: the entity is the replica's
 * {@link Engine}, its id {@code "<model>-<index>"}. Requests reach a replica through its
 * {@link EntityRef} wherever it runs; the factory runs on the node that owns the entity and builds the
 * engine over the replica this node loaded.
 *
 * <p>NOTE: with one node every shard is local. Placement that follows GPUs (an external or custom
 * allocation strategy) is the multi-node step; this class is where it plugs in.
 */
public final class ReplicaSharding {
    public static final EntityTypeKey<Engine.Command> TYPE = EntityTypeKey.create(Engine.Command.class, "replica");
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaSharding.class);

    private final ClusterSharding sharding;
    private final Map<String, Supplier<Behavior<Engine.Command>>> hosted = new ConcurrentHashMap<>();

    private ReplicaSharding(ActorSystem<?> system) {
        this.sharding = ClusterSharding.get(system);
        sharding.init(Entity.of(TYPE, ctx -> create(ctx.getEntityId())));
    }

    public static ReplicaSharding init(ActorSystem<?> system) {
        return new ReplicaSharding(system);
    }

    public static String entityId(String model, int index) {
        return model + "-" + index;
    }

    /**
     * Makes this node able to run replica {@code entityId}. Each start of the entity gets a fresh
     * engine from the factory over the replica's backend, which outlives engines.
     */
    public void host(String entityId, Supplier<Behavior<Engine.Command>> engine) {
        hosted.put(entityId, engine);
    }

    public EntityRef<Engine.Command> replica(String entityId) {
        return sharding.entityRefFor(TYPE, entityId);
    }

    private Behavior<Engine.Command> create(String entityId) {
        Supplier<Behavior<Engine.Command>> engine = hosted.get(entityId);
        if (engine == null) {
            LOG.error("replica {} is not hosted on this node; refusing to start it", entityId);
            return Behaviors.stopped();
        }
        LOG.info("starting replica {}", entityId);
        return engine.get();
    }
}
