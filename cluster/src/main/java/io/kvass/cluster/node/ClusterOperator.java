package io.kvass.cluster.node;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.cluster.placement.AdminReply;
import io.kvass.cluster.placement.Assignment;
import io.kvass.cluster.placement.Deployment;
import io.kvass.cluster.placement.Device;
import io.kvass.cluster.placement.NodeInventory;
import io.kvass.cluster.placement.PlacementCoordinator;
import io.kvass.cluster.placement.PlacementState;
import io.kvass.http.ClusterAdmin;
import io.kvass.http.api.ApiError;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * {@code /admin}'s view of the cluster: membership from this node's cluster state, devices and replicas from
 * the placement coordinator (asked through its singleton proxy).
 */
final class ClusterOperator implements ClusterAdmin {
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(5);

    private final ActorSystem<?> system;
    private final ActorRef<PlacementCoordinator.Command> coordinator;
    private final Optional<String> adminToken;

    ClusterOperator(ActorSystem<?> system, ActorRef<PlacementCoordinator.Command> coordinator,
                    Optional<String> adminToken) {
        this.system = system;
        this.coordinator = coordinator;
        this.adminToken = adminToken.filter(t -> !t.isEmpty());
    }

    @Override
    public Optional<String> adminToken() {
        return adminToken;
    }

    private CompletionStage<PlacementState> state() {
        return AskPattern.ask(coordinator, PlacementCoordinator.GetState::new, ASK_TIMEOUT, system.scheduler())
                .exceptionally(e -> {
                    throw ApiError.overloaded("The placement coordinator did not answer: " + e.getMessage());
                });
    }

    @Override
    public CompletionStage<JsonNode> nodes() {
        return state().thenApply(state -> {
            var cluster = Cluster.get(system).state();
            Set<String> unreachable = new HashSet<>();
            cluster.getUnreachable().forEach(m -> unreachable.add(m.address().toString()));
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            ArrayNode nodes = out.putArray("nodes");
            for (Member m : cluster.getMembers()) {
                String address = m.address().toString();
                ObjectNode n = nodes.addObject();
                n.put("id", m.address().getHost().orElse("") + ":" + m.address().getPort().orElse(0));
                n.put("address", address);
                ArrayNode roles = n.putArray("roles");
                m.getRoles().stream().filter(r -> !r.startsWith("dc-")).sorted().forEach(roles::add);
                n.put("status", m.status().toString().toLowerCase(Locale.ROOT));
                n.put("reachable", !unreachable.contains(address));
                n.put("draining", state.draining().contains(address));
                ArrayNode devices = n.putArray("devices");
                state.nodes().stream().filter(i -> i.address().equals(address)).findFirst()
                        .map(NodeInventory::devices).orElse(List.of()).forEach(d -> device(devices.addObject(), d));
                ArrayNode replicas = n.putArray("replicas");
                state.assignments().stream().filter(a -> a.node().equals(address))
                        .forEach(a -> replicas.add(a.replicaId()));
            }
            return out;
        });
    }

    private static void device(ObjectNode o, Device d) {
        o.put("index", d.index());
        o.put("kind", d.kind().apiName());
        o.put("name", d.name());
        if (d.totalBytes() > 0) {
            o.put("total_bytes", d.totalBytes());
            o.put("free_bytes", d.freeBytes());
        }
    }

    @Override
    public CompletionStage<JsonNode> deployments() {
        return state().thenApply(state -> {
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            ArrayNode array = out.putArray("deployments");
            for (Deployment d : state.deployments()) {
                ObjectNode o = array.addObject();
                o.put("model", d.name());
                o.put("replicas", d.replicas());
                o.put("devices_per_replica", d.devicesPerReplica());
                o.put("device", d.device().apiName());
                ArrayNode placed = o.putArray("placed");
                for (Assignment a : state.assignments()) {
                    if (a.deployment().equals(d.name())) {
                        ObjectNode p = placed.addObject();
                        p.put("replica", a.replicaId());
                        p.put("node", a.node());
                        ArrayNode devices = p.putArray("devices");
                        a.devices().forEach(devices::add);
                    }
                }
                ArrayNode pending = o.putArray("pending");
                state.pending().stream().filter(id -> id.startsWith(d.name() + "-")).forEach(pending::add);
            }
            return out;
        });
    }

    @Override
    public CompletionStage<JsonNode> scale(String model, int replicas) {
        return change(r -> new PlacementCoordinator.Scale(model, replicas, r));
    }

    @Override
    public CompletionStage<JsonNode> drain(String node) {
        return change(r -> new PlacementCoordinator.Drain(node, r));
    }

    private CompletionStage<JsonNode> change(
            java.util.function.Function<ActorRef<AdminReply>, PlacementCoordinator.Command> message) {
        return AskPattern.ask(coordinator, message::apply, ASK_TIMEOUT, system.scheduler()).thenApply(reply -> {
            if (reply.status() == 404) {
                throw new ApiError(404, "invalid_request_error", reply.message(), Optional.empty(), Optional.of("not_found"));
            }
            if (reply.status() != 200) {
                throw ApiError.overloaded(reply.message());
            }
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            out.put("status", "ok");
            out.put("message", reply.message());
            return (JsonNode) out;
        });
    }
}
