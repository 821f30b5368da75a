package io.kvass.cluster.node;

import io.kvass.http.HttpServer;
import io.kvass.http.ServedModel;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.core.AdapterGate;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.EngineStats;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.engine.StepExecutor;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.lora.AdapterDevice;
import io.kvass.worker.lora.AdapterLoadException;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.AdapterSpec;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One serving node: loads the model, starts the ActorSystem as a cluster node (joining itself when
 * no seed nodes are configured), registers the {@code --lora-modules} adapters, hosts the replica as a
 * sharded {@link Engine} and serves the API.
 * SIGTERM (or {@link #shutdown()}) runs CoordinatedShutdown: unbind, drain or abort in-flight streams,
 * leave the cluster, stop the engine.
 */
public final class ServingNode {
    private static final Logger LOG = LoggerFactory.getLogger(ServingNode.class);
    private static final Duration REPLICA_START_TIMEOUT = Duration.ofSeconds(60);

    private final ActorSystem<Void> system;
    private final HttpServer http;
    private final EntityRef<Engine.Command> replica;
    private final Optional<AdapterManager> adapters;

    private ServingNode(ActorSystem<Void> system, HttpServer http, EntityRef<Engine.Command> replica,
                        Optional<AdapterManager> adapters) {
        this.system = system;
        this.http = http;
        this.replica = replica;
        this.adapters = adapters;
    }

    public static ServingNode start(ServeSettings settings) {
        return start(settings, UnaryOperator.identity());
    }

    /** @param steps wraps the replica's step executor (tests slow it down) */
    static ServingNode start(ServeSettings settings, UnaryOperator<StepExecutor> steps) {
        ModelReplica model = loadWithProgress(settings);
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), NodeConfig.SYSTEM_NAME, settings.config());
        // NOTE: engines borrow the replica's backend (a restarted entity reuses it); it closes with the node.
        system.getWhenTerminated().thenRun(model::close);
        try {
            Cluster cluster = Cluster.get(system);
            if (settings.cluster().seedNodes().isEmpty()) {
                cluster.manager().tell(Join.create(cluster.selfMember().address()));
            }
            String entityId = ReplicaSharding.entityId(settings.servedModelName(), 0);
            ReplicaSharding sharding = ReplicaSharding.init(system);
            SchedulerConfig scheduler = new SchedulerConfig(settings.engine().maxNumSeqs(),
                    settings.engine().maxNumBatchedTokens(), model.maxModelLen(), settings.engine().policy(),
                    settings.engine().enablePrefixCaching());
            Optional<AdapterManager> adapters = adapters(settings.lora(), model, system);
            sharding.host(entityId, () -> {
                // NOTE: a restarted engine starts with no requests; what the last one counted is void.
                adapters.ifPresent(AdapterManager::forgetRequests);
                LocalEngine local = LocalEngine.of(model.backend(), model.tokenizer(), scheduler,
                        adapters.map(AdapterGate::managed).orElse(AdapterGate.FIXED_SLOTS));
                return Engine.create(local.core(), steps.apply(StepExecutor.local(local.runner())));
            });
            EntityRef<Engine.Command> replica = sharding.replica(entityId);
            EngineStats stats = AskPattern.ask(replica, Engine.GetStats::new, REPLICA_START_TIMEOUT, system.scheduler())
                    .toCompletableFuture().get(REPLICA_START_TIMEOUT.toSeconds() + 5, TimeUnit.SECONDS);
            LOG.info("replica {} is up on {}: {} KV blocks", entityId, cluster.selfMember().address(),
                    stats.numKvBlocks());
            ServedModel served = new ServedModel(settings.servedModelName(), settings.replica().modelDir().toString(),
                    model.tokenizer(), model.chatTemplate(), model.maxModelLen(), model.model().config().vocabSize(),
                    replica, adapters);
            HttpServer http = HttpServer.start(system, settings.http(), List.of(served), new ServingMetrics())
                    .toCompletableFuture().get(30, TimeUnit.SECONDS)
                    .stopOnShutdown(system, settings.http().drainTimeout());
            return new ServingNode(system, http, replica, adapters);
        } catch (Exception e) {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().join();
            throw new IllegalStateException("kvass serve could not start: " + e.getMessage(), e);
        }
    }

    /**
     * The replica's adapter manager when LoRA is on, with every {@code --lora-modules} adapter registered
     * (read and checked now: a bad one stops the start). Later loads read from disk on the blocking-IO dispatcher.
     */
    private static Optional<AdapterManager> adapters(LoraSettings lora, ModelReplica model, ActorSystem<?> system) {
        if (!lora.enabled()) {
            return Optional.empty();
        }
        AdapterManager adapters = new AdapterManager(model.model().config(), lora.options(),
                AdapterDevice.of(model.backend()), system.dispatchers().lookup(DispatcherSelector.blocking()));
        for (LoraSettings.Module m : lora.modules()) {
            try {
                AdapterSpec spec = adapters.register(m.name(), m.path());
                LOG.info("LoRA adapter '{}' from {} (id {})", spec.name(), spec.dir(), spec.id());
            } catch (AdapterLoadException | IllegalArgumentException e) {
                throw new IllegalStateException("--lora-modules " + m.name() + ": " + e.getMessage(), e);
            }
        }
        LOG.info("LoRA on: {} adapters registered, {} slots of rank up to {}, {} kept in host memory",
                lora.modules().size(), lora.maxLoras(), lora.maxRank(), lora.maxCpuLoras());
        return Optional.of(adapters);
    }

    /** Loads the weights, logging a line every few seconds so a slow load is visibly alive. */
    private static ModelReplica loadWithProgress(ServeSettings settings) {
        ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "kvass-load-progress");
            t.setDaemon(true);
            return t;
        });
        long start = System.nanoTime();
        ticker.scheduleAtFixedRate(() -> LOG.info("loading weights of {} ... {} s", settings.servedModelName(),
                (System.nanoTime() - start) / 1_000_000_000L), 2, 2, TimeUnit.SECONDS);
        try {
            return ModelReplica.load(settings.replica(), settings.lora().capacity());
        } finally {
            ticker.shutdownNow();
        }
    }

    public ActorSystem<Void> system() {
        return system;
    }

    public int httpPort() {
        return http.address().getPort();
    }

    public HttpServer http() {
        return http;
    }

    public EntityRef<Engine.Command> replica() {
        return replica;
    }

    /** The replica's LoRA adapters, when served with {@code --enable-lora}. */
    public Optional<AdapterManager> adapters() {
        return adapters;
    }

    /** What SIGTERM does. */
    public CompletionStage<Done> shutdown() {
        return CoordinatedShutdown.get(system).runAll(CoordinatedShutdown.unknownReason());
    }

    public void awaitTermination() {
        system.getWhenTerminated().toCompletableFuture().join();
    }
}
