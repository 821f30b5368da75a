package io.kvass.cluster.node;

import io.kvass.cluster.placement.Assignment;
import io.kvass.cluster.placement.Deployment;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.engine.AdapterRegistry;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.EngineIdentity;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.kvass.scheduler.engine.StepExecutor;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.lora.AdapterDevice;
import io.kvass.worker.lora.AdapterLoadException;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.wire.CrossNode;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.UnaryOperator;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One model replica as a Cluster Sharding entity, on the node the placement chose. It starts empty; the
 * coordinator's {@link Start} says which deployment and devices, and the model loads here, off the
 * dispatcher. Then the replica's {@link Engine} runs as a supervised child on a thread of its own, reporting
 * its load to every gateway. {@link Retire} (scale-down, drain, shard hand-off) lets running requests finish.
 */
public final class ReplicaHost extends AbstractBehavior<ReplicaHost.Command> {

    public sealed interface Command {
    }

    /** Run deployment {@code deployment} on {@code assignment}'s devices; repeated while it is placed here. */
    public record Start(Assignment assignment, Deployment deployment) implements Command, CrossNode {
    }

    /** Stop taking requests, let the running ones finish, then stop (and free the model). */
    public enum Retire implements Command, CrossNode {
        INSTANCE
    }

    private record Loaded(Start start, ModelReplica model, Optional<AdapterManager> adapters,
                          ServeSettings.ReplicaSettings settings, Throwable failure) implements Command {
    }

    private enum EngineStopped implements Command {
        INSTANCE
    }

    /**
     * What every replica of this node shares.
     *
     * @param nodeKvass the node's own {@code kvass} section (a deployment's keys go over it)
     * @param reports   where engines publish their load (the gateways' topic)
     * @param loader    blocking work: model and adapter loading
     * @param steps     wraps each engine's step executor (tests inject failures and delays)
     */
    public record NodeContext(com.typesafe.config.Config nodeKvass, String node, ActorRef<ReplicaLoad> reports,
                              Executor loader, UnaryOperator<StepExecutor> steps) {
    }

    /** The dispatcher every engine runs on: a thread per engine, so a busy engine never waits for a pool. */
    static final String ENGINE_DISPATCHER = "kvass-engine-dispatcher";
    private static final Duration MIN_BACKOFF = Duration.ofMillis(200);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(5);

    private final String replicaId;
    private final NodeContext node;
    private Optional<Start> started = Optional.empty();
    private ModelReplica model;
    private ActorRef<Engine.Command> engine;
    private boolean retiring;

    public static Behavior<Command> create(String replicaId, NodeContext node) {
        return Behaviors.setup(ctx -> new ReplicaHost(ctx, replicaId, node));
    }

    private ReplicaHost(ActorContext<Command> context, String replicaId, NodeContext node) {
        super(context);
        this.replicaId = replicaId;
        this.node = node;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Start.class, this::onStart)
                .onMessage(Loaded.class, this::onLoaded)
                .onMessageEquals(Retire.INSTANCE, this::onRetire)
                .onMessageEquals(EngineStopped.INSTANCE, () -> Behaviors.stopped())
                .onSignal(PostStop.class, s -> {
                    if (model != null) {
                        // NOTE: the engine (a child) has stopped, and its executor with it.
                        model.close();
                    }
                    return this;
                })
                .build();
    }

    private Behavior<Command> onStart(Start start) {
        if (started.isPresent()) {
            if (!started.get().assignment().equals(start.assignment())) {
                getContext().getLog().warn("replica {} runs on {}; ignoring a start for {}", replicaId,
                        started.get().assignment(), start.assignment());
            }
            return this;
        }
        if (retiring) {
            return this;
        }
        started = Optional.of(start);
        getContext().getLog().info("replica {} of {} starting on {} devices {}", replicaId, start.deployment().name(),
                node.node(), start.assignment().devices());
        getContext().pipeToSelf(CompletableFuture.supplyAsync(() -> load(start), node.loader()),
                (loaded, failure) -> failure == null ? loaded : new Loaded(start, null, Optional.empty(), null, failure));
        return this;
    }

    /** On the loader: the settings, the weights, and the {@code --lora-modules} adapters (a bad one fails the start). */
    private Loaded load(Start start) {
        ServeSettings.ReplicaSettings settings = ServeSettings.replicaSettings(node.nodeKvass(), start.deployment());
        ModelReplica replica = ModelReplica.load(settings.replica(), settings.lora().capacity());
        try {
            Optional<AdapterManager> adapters = Optional.empty();
            if (settings.lora().enabled()) {
                AdapterManager manager = new AdapterManager(replica.model().config(), settings.lora().options(),
                        AdapterDevice.of(replica.backend()), node.loader());
                for (LoraSettings.Module m : settings.lora().modules()) {
                    manager.register(m.name(), m.path());
                }
                adapters = Optional.of(manager);
            }
            return new Loaded(start, replica, adapters, settings, null);
        } catch (AdapterLoadException | IllegalArgumentException e) {
            replica.close();
            throw e;
        }
    }

    private Behavior<Command> onLoaded(Loaded loaded) {
        if (loaded.failure() != null) {
            getContext().getLog().error("replica {} could not start", replicaId, loaded.failure());
            return Behaviors.stopped(); // the coordinator starts it again, here or elsewhere
        }
        model = loaded.model();
        if (retiring) {
            return Behaviors.stopped();
        }
        ServeSettings.ReplicaSettings s = loaded.settings();
        AdapterRegistry registry = loaded.adapters().map(AdapterRegistry::managed).orElse(AdapterRegistry.NONE);
        SchedulerConfig scheduler = new SchedulerConfig(s.engine().maxNumSeqs(), s.engine().maxNumBatchedTokens(),
                model.maxModelLen(), s.engine().policy(), s.engine().enablePrefixCaching());
        EngineIdentity identity = new EngineIdentity(replicaId, s.servedModelName(), node.node(), s.engine().maxNumSeqs());
        ModelReplica m = model;
        // NOTE: each (re)start of the engine gets a fresh scheduler and runner over the replica's backend; the
        // requests of a failed engine hear Unavailable and go elsewhere (see Engine's PreRestart).
        Behavior<Engine.Command> fresh = Behaviors.setup(ctx -> {
            loaded.adapters().ifPresent(AdapterManager::forgetRequests);
            LocalEngine local = LocalEngine.of(m.backend(), m.tokenizer(), scheduler, registry.gate());
            return Engine.create(local.core(), node.steps().apply(StepExecutor.local(local.runner())), identity,
                    registry, Optional.of(node.reports()));
        });
        engine = getContext().spawn(Behaviors.supervise(fresh)
                        .onFailure(SupervisorStrategy.restartWithBackoff(MIN_BACKOFF, MAX_BACKOFF, 0.2)),
                "engine", DispatcherSelector.fromConfig(ENGINE_DISPATCHER));
        getContext().watchWith(engine, EngineStopped.INSTANCE);
        getContext().getLog().info("replica {} of {} is up on {}: {} KV blocks", replicaId, s.servedModelName(),
                node.node(), model.backend().numKvBlocks());
        return this;
    }

    private Behavior<Command> onRetire() {
        retiring = true;
        if (engine != null) {
            engine.tell(Engine.Drain.INSTANCE);
            return this;
        }
        return started.isPresent() ? this : Behaviors.stopped(); // a load in flight: stop when it lands
    }
}
