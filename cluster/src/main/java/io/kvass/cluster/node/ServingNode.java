package io.kvass.cluster.node;

import io.kvass.cluster.placement.Assignment;
import io.kvass.cluster.placement.Deployment;
import io.kvass.cluster.placement.Device;
import io.kvass.cluster.placement.DeviceKind;
import io.kvass.cluster.placement.NodeInventory;
import io.kvass.cluster.placement.PlacementCoordinator;
import io.kvass.http.AdapterCatalog;
import io.kvass.http.HttpServer;
import io.kvass.http.ServedModel;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.kvass.scheduler.engine.StepExecutor;
import io.kvass.scheduler.router.PrefixAwarePolicy;
import io.kvass.scheduler.router.RoundRobinPolicy;
import io.kvass.scheduler.router.RouterActor;
import io.kvass.worker.ModelCard;
import io.kvass.worker.lora.AdapterLoadException;
import io.kvass.worker.lora.AdapterSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.pubsub.Topic;
import org.apache.pekko.cluster.sharding.external.ExternalShardAllocation;
import org.apache.pekko.cluster.sharding.external.javadsl.ExternalShardAllocationClient;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.management.javadsl.PekkoManagement;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One node of a kvass cluster (alone, a one-node cluster with every role). A worker node advertises its
 * devices and hosts the replicas the placement coordinator puts on it (sharded {@link ReplicaHost} entities
 * that load their model here); a gateway node serves the API and routes each request to a replica through
 * its own {@link RouterActor}, fed by every replica's load reports. The coordinator is a cluster singleton.
 * SIGTERM (or {@link #shutdown()}) runs CoordinatedShutdown: unbind, drain or abort in-flight streams, hand
 * off this node's replicas (they finish what they run), leave the cluster.
 */
public final class ServingNode {
    private static final Logger LOG = LoggerFactory.getLogger(ServingNode.class);
    static final String LOAD_TOPIC = "kvass-replica-load";

    private final ActorSystem<Void> system;
    private final Optional<HttpServer> http;
    private final Optional<ActorRef<RouterActor.Command>> router;

    private ServingNode(ActorSystem<Void> system, Optional<HttpServer> http,
                        Optional<ActorRef<RouterActor.Command>> router) {
        this.system = system;
        this.http = http;
        this.router = router;
    }

    public static ServingNode start(ServeSettings settings) {
        return start(settings, UnaryOperator.identity());
    }

    /** @param steps wraps each replica's step executor on this node (tests slow it down or make it fail) */
    public static ServingNode start(ServeSettings settings, UnaryOperator<StepExecutor> steps) {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), NodeConfig.SYSTEM_NAME, settings.config());
        try {
            Cluster cluster = Cluster.get(system);
            if (settings.cluster().seedNodes().isEmpty()) {
                cluster.manager().tell(Join.create(cluster.selfMember().address()));
            }
            if (settings.cluster().managementPort() > 0) {
                PekkoManagement.get(system).start().toCompletableFuture().get(30, TimeUnit.SECONDS);
            }
            String self = cluster.selfMember().address().toString();
            Executor loader = system.dispatchers().lookup(DispatcherSelector.blocking());
            ActorRef<Topic.Command<ReplicaLoad>> topic = system.systemActorOf(
                    Topic.create(ReplicaLoad.class, LOAD_TOPIC), "replica-load-topic", Props.empty());
            ActorRef<ReplicaLoad> publish = system.systemActorOf(Behaviors.receive(ReplicaLoad.class)
                    .onAnyMessage(load -> {
                        topic.tell(Topic.publish(load));
                        return Behaviors.same();
                    }).build(), "replica-load-publisher", Props.empty());
            ReplicaSharding sharding = ReplicaSharding.init(system, new ReplicaHost.NodeContext(
                    settings.config().getConfig("kvass"), self, publish, loader, steps));
            ExternalShardAllocationClient allocation = ExternalShardAllocation.get(system)
                    .getClient(ReplicaSharding.TYPE.name());
            ActorRef<PlacementCoordinator.Command> coordinator = ClusterSingleton.get(system).init(SingletonActor.of(
                    PlacementCoordinator.create(settings.deployments(), new PlacementCoordinator.Replicas() {
                        @Override
                        public ExternalShardAllocationClient allocation() {
                            return allocation;
                        }

                        @Override
                        public void start(Assignment assignment, Deployment deployment) {
                            sharding.replica(assignment.replicaId()).tell(new ReplicaHost.Start(assignment, deployment));
                        }

                        @Override
                        public void retire(String replicaId) {
                            sharding.replica(replicaId).tell(ReplicaHost.Retire.INSTANCE);
                        }

                        @Override
                        public CompletionStage<java.util.Map<String, Integer>> hosted() {
                            return sharding.hosted(system);
                        }
                    }), "placement-coordinator"));
            if (settings.cluster().isWorker()) {
                system.systemActorOf(InventoryPublisher.create(inventory(self, settings)), "inventory", Props.empty());
            }
            Optional<HttpServer> http = Optional.empty();
            Optional<ActorRef<RouterActor.Command>> gatewayRouter = Optional.empty();
            if (settings.cluster().isGateway()) {
                ServeSettings.RouterConfig routing = settings.router();
                ServingMetrics metrics = new ServingMetrics();
                ActorRef<RouterActor.Command> router = system.systemActorOf(RouterActor.create(
                        new RouterActor.Settings(routing.settings(), java.time.Duration.ofSeconds(60)),
                        routing.prefixAware() ? new PrefixAwarePolicy() : new RoundRobinPolicy(), metrics::routed,
                        ref -> topic.tell(Topic.subscribe(ref))), "router", Props.empty());
                List<ServedModel> served = new ArrayList<>();
                for (Deployment d : settings.deployments()) {
                    served.add(served(settings, d, router, loader));
                }
                gatewayRouter = Optional.of(router);
                ClusterOperator operator = new ClusterOperator(system, coordinator, settings.cluster().adminToken());
                http = Optional.of(HttpServer.start(system, settings.http(), served, metrics,
                                Optional.of(operator))
                        .toCompletableFuture().get(30, TimeUnit.SECONDS)
                        .stopOnShutdown(system, settings.http().drainTimeout()));
            }
            LOG.info("node {} up with roles {}", self, settings.cluster().roles());
            return new ServingNode(system, http, gatewayRouter);
        } catch (Exception e) {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().join();
            throw new IllegalStateException("kvass serve could not start: " + e.getMessage(), e);
        }
    }

    /** What a worker offers: {@code node.devices} slots of the kind its own {@code device} setting names. */
    private static NodeInventory inventory(String self, ServeSettings settings) {
        DeviceKind kind = settings.replica().device() == io.kvass.worker.ReplicaOptions.Device.CUDA ? DeviceKind.CUDA
                : DeviceKind.CPU;
        List<Device> devices = IntStream.range(0, settings.cluster().devices())
                .mapToObj(i -> new Device(i, kind, kind == DeviceKind.CUDA ? "cuda:" + i : "cpu", 0, 0)).toList();
        return new NodeInventory(self, devices);
    }

    /**
     * A deployment as this gateway serves it: its tokenizer and context length (no weights), and its
     * {@code --lora-modules} adapters registered (read and checked now: a bad one stops the start).
     */
    private static ServedModel served(ServeSettings settings, Deployment d, ActorRef<RouterActor.Command> router,
                                      Executor loader) {
        ServeSettings.ReplicaSettings s = ServeSettings.replicaSettings(settings.config().getConfig("kvass"), d);
        ModelCard card = ModelCard.load(s.replica());
        Optional<AdapterCatalog> adapters = Optional.empty();
        if (s.lora().enabled()) {
            AdapterCatalog catalog = new AdapterCatalog(card.config(), s.lora().options(), loader);
            for (LoraSettings.Module m : s.lora().modules()) {
                try {
                    AdapterSpec spec = catalog.register(m.name(), m.path());
                    LOG.info("LoRA adapter '{}' from {} (id {})", spec.name(), spec.dir(), spec.id());
                } catch (AdapterLoadException | IllegalArgumentException e) {
                    throw new IllegalStateException("--lora-modules " + m.name() + ": " + e.getMessage(), e);
                }
            }
            adapters = Optional.of(catalog);
        }
        return new ServedModel(s.servedModelName(), s.replica().modelDir().toString(), card.tokenizer(),
                card.chatTemplate(), card.maxModelLen(), card.config().vocabSize(), router, adapters);
    }

    public ActorSystem<Void> system() {
        return system;
    }

    /** The API's port; a node without the gateway role has none. */
    public int httpPort() {
        return http.orElseThrow(() -> new IllegalStateException("this node is not a gateway")).address().getPort();
    }

    public HttpServer http() {
        return http.orElseThrow(() -> new IllegalStateException("this node is not a gateway"));
    }

    /** What SIGTERM does. */
    public CompletionStage<Done> shutdown() {
        return CoordinatedShutdown.get(system).runAll(CoordinatedShutdown.unknownReason());
    }

    public void awaitTermination() {
        system.getWhenTerminated().toCompletableFuture().join();
    }

    /**
     * Waits until this gateway's router knows {@code count} replicas that take requests (of any model): replicas
     * load after the node starts, and requests sent before are held until one reports.
     *
     * @throws IllegalStateException when they are not there within {@code timeout}
     */
    public void awaitReplicas(int count, java.time.Duration timeout) {
        ActorRef<RouterActor.Command> r = router.orElseThrow(() -> new IllegalStateException("not a gateway"));
        long deadline = System.nanoTime() + timeout.toNanos();
        int seen = 0;
        while (System.nanoTime() < deadline) {
            RouterActor.State state = org.apache.pekko.actor.typed.javadsl.AskPattern.<RouterActor.Command,
                            RouterActor.State>ask(r, RouterActor.GetReplicas::new, java.time.Duration.ofSeconds(5),
                            system.scheduler()).toCompletableFuture().join();
            seen = (int) state.replicas().stream().filter(v -> v.load().accepting()).count();
            if (seen >= count) {
                return;
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
        throw new IllegalStateException("only " + seen + " of " + count + " replicas up after " + timeout);
    }
}
