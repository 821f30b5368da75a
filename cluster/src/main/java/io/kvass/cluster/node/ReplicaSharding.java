package io.kvass.cluster.node;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.sharding.ShardRegion;
import org.apache.pekko.cluster.sharding.typed.ClusterShardingQuery;
import org.apache.pekko.cluster.sharding.typed.GetClusterShardingStats;
import org.apache.pekko.cluster.sharding.external.ExternalShardAllocationStrategy;
import org.apache.pekko.cluster.sharding.typed.ShardingEnvelope;
import org.apache.pekko.cluster.sharding.typed.ShardingMessageExtractor;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.apache.pekko.util.Timeout;

/**
 * Model replicas as Cluster Sharding entities of type {@code "replica"}, id {@code "<model>-<index>"}, one per
 * shard. Placement is explicit: the {@link io.kvass.cluster.placement.PlacementCoordinator} pins each shard to
 * the node it chose through an {@link ExternalShardAllocationStrategy}, never "whoever asks first". Only worker
 * nodes host them; gateways and the coordinator reach them through {@link EntityRef}s. Hand-off (drain,
 * re-placement) stops an entity with {@link ReplicaHost.Retire}, so its running requests finish.
 */
public final class ReplicaSharding {
    public static final EntityTypeKey<ReplicaHost.Command> TYPE = EntityTypeKey.create(ReplicaHost.Command.class,
            "replica");

    private final ClusterSharding sharding;

    private ReplicaSharding(ActorSystem<?> system, ReplicaHost.NodeContext node) {
        this.sharding = ClusterSharding.get(system);
        sharding.init(Entity.of(TYPE, ctx -> ReplicaHost.create(ctx.getEntityId(), node))
                .withRole(ServeSettings.WORKER)
                .withStopMessage(ReplicaHost.Retire.INSTANCE)
                .withAllocationStrategy(new ExternalShardAllocationStrategy(system, TYPE.name(),
                        Timeout.create(java.time.Duration.ofSeconds(5))))
                .withMessageExtractor(new OneEntityPerShard()));
    }

    public static ReplicaSharding init(ActorSystem<?> system, ReplicaHost.NodeContext node) {
        return new ReplicaSharding(system, node);
    }

    public EntityRef<ReplicaHost.Command> replica(String replicaId) {
        return sharding.entityRefFor(TYPE, replicaId);
    }

    /** Replica entities running per node address, as the shard regions report them. */
    public CompletionStage<Map<String, Integer>> hosted(ActorSystem<?> system) {
        Duration timeout = Duration.ofSeconds(3);
        return AskPattern.<ClusterShardingQuery, ShardRegion.ClusterShardingStats>ask(sharding.shardState(),
                        replyTo -> new GetClusterShardingStats(TYPE, timeout, replyTo), timeout.plusSeconds(1),
                        system.scheduler())
                .thenApply(stats -> {
                    Map<String, Integer> out = new HashMap<>();
                    stats.getRegions().forEach((address, region) -> out.put(address.toString(),
                            region.getStats().values().stream().mapToInt(n -> ((Number) n).intValue()).sum()));
                    return out;
                });
    }

    /** The shard of a replica is the replica: the placement moves replicas one by one. */
    private static final class OneEntityPerShard
            extends ShardingMessageExtractor<ShardingEnvelope<ReplicaHost.Command>, ReplicaHost.Command> {
        @Override
        public String entityId(ShardingEnvelope<ReplicaHost.Command> envelope) {
            return envelope.entityId();
        }

        @Override
        public String shardId(String entityId) {
            return entityId;
        }

        @Override
        public ReplicaHost.Command unwrapMessage(ShardingEnvelope<ReplicaHost.Command> envelope) {
            return envelope.message();
        }
    }
}
