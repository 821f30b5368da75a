package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.ddata.Key;
import org.apache.pekko.cluster.ddata.LWWMap;
import org.apache.pekko.cluster.ddata.LWWMapKey;
import org.apache.pekko.cluster.ddata.SelfUniqueAddress;
import org.apache.pekko.cluster.ddata.typed.javadsl.DistributedData;
import org.apache.pekko.cluster.ddata.typed.javadsl.Replicator;
import org.apache.pekko.cluster.ddata.typed.javadsl.ReplicatorMessageAdapter;
import org.apache.pekko.cluster.sharding.external.javadsl.ExternalShardAllocationClient;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Leave;

/**
 * The cluster's one placement coordinator (a cluster singleton): it keeps every deployment's replicas placed
 * on worker nodes with free devices, using {@link Placement} for the decisions. Each second it recomputes from
 * membership, the nodes' inventories and the deployments (all replicated state, so a new coordinator after a
 * failover picks up where the last one was), pins every placed replica's shard to its node through the
 * external shard allocation, and (re)sends each replica its start; replicas it no longer wants get a retire.
 * A drained node's replicas move away; once none is left there, the node is told to leave.
 */
public final class PlacementCoordinator extends AbstractBehavior<PlacementCoordinator.Command> {

    public sealed interface Command {
    }

    public record GetState(ActorRef<PlacementState> replyTo) implements Command, CrossNode {
    }

    /** Change a deployment's replica count (stored with a majority write). */
    public record Scale(String model, int replicas, ActorRef<AdminReply> replyTo) implements Command, CrossNode {
    }

    /** Move every replica off {@code node} (its address, or host:port), then make it leave. */
    public record Drain(String node, ActorRef<AdminReply> replyTo) implements Command, CrossNode {
    }

    private enum Tick implements Command {
        INSTANCE
    }

    private record DeploymentsChanged(Map<String, Deployment> entries) implements Command {
    }

    private record NodesChanged(Map<String, NodeInventory> entries) implements Command {
    }

    private record AssignmentsChanged(Map<String, Assignment> entries) implements Command {
    }

    private record Stored(Replicator.UpdateResponse<LWWMap<String, Deployment>> rsp, Deployment deployment,
                          ActorRef<AdminReply> replyTo) implements Command {
    }

    private record Ignored(Object rsp) implements Command {
    }

    private record Hosted(Map<String, Integer> entitiesByNode) implements Command {
    }

    public static final Key<LWWMap<String, Deployment>> DEPLOYMENTS = LWWMapKey.create("kvass-deployments");
    public static final Key<LWWMap<String, NodeInventory>> NODES = LWWMapKey.create("kvass-nodes");
    public static final Key<LWWMap<String, Assignment>> ASSIGNMENTS = LWWMapKey.create("kvass-assignments");
    private static final Duration TICK = Duration.ofSeconds(1);
    private static final Duration WRITE_TIMEOUT = Duration.ofSeconds(3);

    /**
     * How the coordinator reaches replicas: pin a shard to a node, and tell a replica entity to start or retire.
     */
    public interface Replicas {
        ExternalShardAllocationClient allocation();

        void start(Assignment assignment, Deployment deployment);

        void retire(String replicaId);

        /** How many replica entities run on each node now (a handed-off replica counts until it has stopped). */
        java.util.concurrent.CompletionStage<Map<String, Integer>> hosted();
    }

    private final Cluster cluster;
    private final SelfUniqueAddress self;
    private final Replicas replicas;
    private final ReplicatorMessageAdapter<Command, LWWMap<String, Deployment>> deploymentsData;
    private final ReplicatorMessageAdapter<Command, LWWMap<String, Assignment>> assignmentsData;
    private final List<Deployment> configured;
    private final Map<String, Deployment> deployments = new TreeMap<>();
    private final Map<String, NodeInventory> inventories = new TreeMap<>();
    private Map<String, Assignment> assignments = new TreeMap<>();
    /** Where each shard is pinned (what the allocation was last told). */
    private final Map<String, String> pinned = new HashMap<>();
    private List<String> pending = List.of();
    private final Set<String> draining = new TreeSet<>();
    private final Set<String> toldToLeave = new HashSet<>();
    private boolean assignmentsRead;

    /** @param configured the deployments of this node's configuration: stored when the cluster has none by that name */
    public static Behavior<Command> create(List<Deployment> configured, Replicas replicas) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> DistributedData.withReplicatorMessageAdapter(
                (ReplicatorMessageAdapter<Command, LWWMap<String, Deployment>> deps) ->
                        DistributedData.withReplicatorMessageAdapter(
                                (ReplicatorMessageAdapter<Command, LWWMap<String, Assignment>> as) -> {
                                    timers.startTimerWithFixedDelay(Tick.INSTANCE, TICK);
                                    ctx.spawn(KeyWatcher.create(DEPLOYMENTS, ctx.getSelf(), DeploymentsChanged::new),
                                            "deployments");
                                    ctx.spawn(KeyWatcher.create(NODES, ctx.getSelf(), NodesChanged::new), "nodes");
                                    ctx.spawn(KeyWatcher.create(ASSIGNMENTS, ctx.getSelf(), AssignmentsChanged::new),
                                            "assignments");
                                    return new PlacementCoordinator(ctx, configured, replicas, deps, as);
                                }))));
    }

    private PlacementCoordinator(ActorContext<Command> context, List<Deployment> configured, Replicas replicas,
                                 ReplicatorMessageAdapter<Command, LWWMap<String, Deployment>> deploymentsData,
                                 ReplicatorMessageAdapter<Command, LWWMap<String, Assignment>> assignmentsData) {
        super(context);
        this.cluster = Cluster.get(context.getSystem());
        this.self = DistributedData.get(context.getSystem()).selfUniqueAddress();
        this.replicas = replicas;
        this.deploymentsData = deploymentsData;
        this.assignmentsData = assignmentsData;
        this.configured = List.copyOf(configured);
        configured.forEach(d -> deployments.put(d.name(), d));
        context.getLog().info("placement coordinator up on {}", cluster.selfMember().address());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(GetState.class, g -> {
                    g.replyTo().tell(state());
                    return this;
                })
                .onMessage(Scale.class, this::onScale)
                .onMessage(Drain.class, this::onDrain)
                .onMessage(Stored.class, this::onStored)
                .onMessage(DeploymentsChanged.class, c -> {
                    deployments.putAll(c.entries());
                    return this;
                })
                .onMessage(NodesChanged.class, c -> {
                    inventories.clear();
                    inventories.putAll(c.entries());
                    return this;
                })
                .onMessage(AssignmentsChanged.class, c -> {
                    if (!assignmentsRead) {
                        // NOTE: a new coordinator adopts where its predecessor put the replicas (no needless moves).
                        assignments = new TreeMap<>(c.entries());
                        assignmentsRead = true;
                    }
                    return this;
                })
                .onMessage(Ignored.class, i -> this)
                .onMessage(Hosted.class, h -> {
                    leaveWhenDrained(h.entitiesByNode());
                    return this;
                })
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .build();
    }

    private Behavior<Command> onScale(Scale scale) {
        Deployment d = deployments.get(scale.model());
        if (d == null) {
            scale.replyTo().tell(new AdminReply(404, "The model '" + scale.model() + "' has no deployment."));
            return this;
        }
        store(d.withReplicas(scale.replicas()), scale.replyTo());
        return this;
    }

    private void store(Deployment d, ActorRef<AdminReply> replyTo) {
        deploymentsData.askUpdate(r -> new Replicator.Update<>(DEPLOYMENTS, LWWMap.create(),
                        new Replicator.WriteMajority(WRITE_TIMEOUT), r, map -> map.put(self, d.name(), d)),
                rsp -> new Stored(rsp, d, replyTo));
    }

    private Behavior<Command> onStored(Stored stored) {
        Deployment d = stored.deployment();
        deployments.put(d.name(), d);
        boolean ok = stored.rsp() instanceof Replicator.UpdateSuccess<?>;
        if (stored.replyTo() != null) {
            stored.replyTo().tell(ok ? AdminReply.ok(d.name() + " scaled to " + d.replicas() + " replicas")
                    : new AdminReply(503, "The change to " + d.name() + " could not be stored on a majority of nodes ("
                    + stored.rsp().getClass().getSimpleName() + "); it applies here and spreads when they are back."));
        }
        getContext().getLog().info("deployment {}: {} replicas ({})", d.name(), d.replicas(), ok ? "stored" : "stored locally");
        place();
        return this;
    }

    private Behavior<Command> onDrain(Drain drain) {
        var member = memberNamed(drain.node());
        if (member == null) {
            drain.replyTo().tell(new AdminReply(404, "No cluster member '" + drain.node() + "'."));
            return this;
        }
        String address = member.address().toString();
        draining.add(address);
        long moving = assignments.values().stream().filter(a -> a.node().equals(address)).count();
        getContext().getLog().info("draining {}: {} replicas move elsewhere, then it leaves", address, moving);
        drain.replyTo().tell(AdminReply.ok("draining " + address + ": " + moving + " replicas move elsewhere, then it"
                + " leaves the cluster"));
        place();
        return this;
    }

    /** A member by its full address or by host:port. */
    private Member memberNamed(String name) {
        for (Member m : cluster.state().getMembers()) {
            Address a = m.address();
            String hostPort = a.getHost().orElse("") + ":" + a.getPort().orElse(0);
            if (a.toString().equals(name) || hostPort.equals(name)) {
                return m;
            }
        }
        return null;
    }

    private Behavior<Command> onTick() {
        storeConfiguredOnce();
        // NOTE: a new coordinator first hears where its predecessor put the replicas (gossip brings that within a
        // tick or two); placing from nothing would move replicas needlessly. A young cluster has none to hear.
        if (assignmentsRead || ++ticksWithoutAssignments > 2) {
            place();
        }
        return this;
    }

    private int ticksWithoutAssignments;

    private boolean configuredStored;

    /** The configured deployments the cluster does not know yet are stored (the cluster's own ones win). */
    private void storeConfiguredOnce() {
        if (configuredStored) {
            return;
        }
        configuredStored = true;
        for (Deployment d : configured) {
            deploymentsData.askUpdate(r -> new Replicator.Update<>(DEPLOYMENTS, LWWMap.create(),
                    Replicator.writeLocal(), r, map -> map.contains(d.name()) ? map : map.put(self, d.name(), d)),
                    Ignored::new);
        }
    }

    private void place() {
        Set<String> unreachable = new HashSet<>();
        cluster.state().getUnreachable().forEach(m -> unreachable.add(m.address().toString()));
        List<NodeInventory> eligible = new ArrayList<>();
        Set<String> up = new HashSet<>();
        for (Member m : cluster.state().getMembers()) {
            String address = m.address().toString();
            up.add(address);
            if (m.status() == MemberStatus.up() && m.hasRole("worker") && !unreachable.contains(address)
                    && !draining.contains(address) && inventories.containsKey(address)) {
                eligible.add(inventories.get(address));
            }
        }
        Placement.Result result = Placement.place(List.copyOf(deployments.values()), eligible, assignments);
        for (Assignment old : assignments.values()) {
            if (!result.assignments().containsKey(old.replicaId()) && up.contains(old.node())
                    && !unreachable.contains(old.node())) {
                getContext().getLog().info("retiring replica {} on {}", old.replicaId(), old.node());
                replicas.retire(old.replicaId());
            }
        }
        assignments = new TreeMap<>(result.assignments());
        pending = result.pending();
        for (Assignment a : assignments.values()) {
            pinAndStart(a);
        }
        assignmentsData.askUpdate(r -> new Replicator.Update<>(ASSIGNMENTS, LWWMap.create(), Replicator.writeLocal(), r,
                map -> replaceAll(map, assignments)), Ignored::new);
        draining.retainAll(up);
        toldToLeave.retainAll(up);
        if (!draining.isEmpty()) {
            getContext().pipeToSelf(replicas.hosted(), (hosted, failure) -> failure == null ? new Hosted(hosted)
                    : new Ignored(failure));
        }
    }

    private LWWMap<String, Assignment> replaceAll(LWWMap<String, Assignment> map, Map<String, Assignment> wanted) {
        LWWMap<String, Assignment> out = map;
        for (String k : map.getEntries().keySet()) {
            if (!wanted.containsKey(k)) {
                out = out.remove(self, k);
            }
        }
        for (var e : wanted.entrySet()) {
            if (!e.getValue().equals(map.getEntries().get(e.getKey()))) {
                out = out.put(self, e.getKey(), e.getValue());
            }
        }
        return out;
    }

    /** The shard goes where the replica is placed; the start follows once the allocation knows it. */
    private void pinAndStart(Assignment a) {
        Deployment d = deployments.get(a.deployment());
        if (!a.node().equals(pinned.get(a.replicaId()))) {
            pinned.put(a.replicaId(), a.node());
            replicas.allocation().setShardLocation(a.replicaId(), AddressFromURIString.parse(a.node()))
                    .whenComplete((done, failure) -> {
                        if (failure != null) {
                            pinned.remove(a.replicaId()); // NOTE: read on the actor; a retry next tick
                        }
                    });
            return; // started on the next tick, after the allocation has the location
        }
        replicas.start(a, d);
    }

    /**
     * A draining node leaves once no replica is placed there and none still runs there: a replica handed off
     * finishes its requests first, and a node that left early would cut them off.
     */
    private void leaveWhenDrained(Map<String, Integer> entitiesByNode) {
        for (String node : List.copyOf(draining)) {
            boolean placed = assignments.values().stream().anyMatch(a -> a.node().equals(node));
            if (!placed && entitiesByNode.getOrDefault(node, 0) == 0 && toldToLeave.add(node)) {
                getContext().getLog().info("{} is drained: telling it to leave", node);
                cluster.manager().tell(Leave.create(AddressFromURIString.parse(node)));
            }
        }
    }

    private PlacementState state() {
        return new PlacementState(List.copyOf(deployments.values()), List.copyOf(assignments.values()), pending,
                List.copyOf(inventories.values()), List.copyOf(draining));
    }
}
