package io.kvass.http;

import com.typesafe.config.ConfigFactory;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.engine.AdapterRegistry;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.EngineIdentity;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.kvass.scheduler.router.PrefixAwarePolicy;
import io.kvass.scheduler.router.RouterActor;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.engine.StepExecutor;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.lora.AdapterDevice;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import io.kvass.worker.testing.Fixtures;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * stories260K (or another model, optionally with LoRA adapters) behind a real server on 127.0.0.1:0:
 * one replica's Engine actor spawned directly, reporting its load to the gateway's router as replicas do in
 * the cluster, optionally slowed down per step so that tests can act while a request runs.
 */
final class TestServer implements AutoCloseable {
    static final String MODEL = "stories260K";

    final ActorSystem<Void> system;
    final ModelReplica replica;
    final ActorRef<Engine.Command> engine;
    /** The gateway's adapters, present when started with LoRA options (the replica loads them on demand). */
    final Optional<AdapterCatalog> adapters;
    final ActorRef<RouterActor.Command> router;
    private final ExecutorService adapterLoader = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "test-lora-loader");
        t.setDaemon(true);
        return t;
    });
    final HttpServer server;
    final ServingMetrics metrics = new ServingMetrics();
    final URI base;

    private TestServer(HttpSettings settings, int maxNumSeqs, Duration stepDelay) {
        this(settings, maxNumSeqs, stepDelay, Fixtures.stories260K(), MODEL, Optional.empty());
    }

    private TestServer(HttpSettings settings, int maxNumSeqs, Duration stepDelay, Path modelDir, String name,
                       Optional<LoraOptions> lora) {
        system = ActorSystem.create(Behaviors.empty(), "kvass-http-test", ConfigFactory.parseString("""
                pekko.loggers = ["org.apache.pekko.event.slf4j.Slf4jLogger"]
                pekko.logging-filter = "org.apache.pekko.event.slf4j.Slf4jLoggingFilter"
                pekko.loglevel = INFO
                pekko.log-dead-letters = off
                pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off
                """).withFallback(ConfigFactory.load()));
        replica = ModelReplica.load(new ReplicaOptions(modelDir, ReplicaOptions.Device.CPU, 16, 64L << 20,
                0, maxNumSeqs, 1), lora.map(LoraOptions::device).orElse(LoraCapacity.NONE));
        AdapterRegistry registry = lora.map(o -> AdapterRegistry.managed(new AdapterManager(replica.model().config(), o,
                AdapterDevice.of(replica.backend()), adapterLoader))).orElse(AdapterRegistry.NONE);
        adapters = lora.map(o -> new AdapterCatalog(replica.model().config(), o, adapterLoader));
        LocalEngine local = LocalEngine.of(replica.backend(), replica.tokenizer(),
                new SchedulerConfig(maxNumSeqs, 2048, replica.maxModelLen(), SchedulingPolicy.FCFS, true),
                registry.gate());
        StepExecutor executor = StepExecutor.local(local.runner());
        CompletableFuture<ActorRef<ReplicaLoad>> reports = new CompletableFuture<>();
        // NOTE: a gateway queue of a few requests gets replica queues as short (tests of 503 under load).
        RouterActor.Settings routing = RouterActor.Settings.defaults(settings.maxWaiting());
        routing = new RouterActor.Settings(routing.routing().withMaxQueuedPerReplica(Math.min(8, settings.maxWaiting())),
                routing.maxHoldTime());
        router = system.systemActorOf(RouterActor.create(routing, new PrefixAwarePolicy(), metrics::routed,
                reports::complete), "router", Props.empty());
        engine = system.systemActorOf(Engine.create(local.core(), stepDelay.isZero() ? executor : slow(executor, stepDelay),
                new EngineIdentity(name + "-0", name, "local", maxNumSeqs), registry, Optional.of(reports.join())),
                "engine", Props.empty());
        ServedModel model = new ServedModel(name, modelDir.toString(), replica.tokenizer(), replica.chatTemplate(),
                replica.maxModelLen(), replica.model().config().vocabSize(), router, adapters);
        server = HttpServer.start(system, settings, List.of(model), metrics).toCompletableFuture().join();
        base = URI.create("http://127.0.0.1:" + server.address().getPort());
    }

    static TestServer start() {
        return new TestServer(HttpSettings.local(), 256, Duration.ZERO);
    }

    static TestServer start(HttpSettings settings, int maxNumSeqs, Duration stepDelay) {
        return new TestServer(settings, maxNumSeqs, stepDelay);
    }

    /** {@code modelDir} served as {@code name} with LoRA; register adapters through {@link #adapters} before requests. */
    static TestServer withLora(Path modelDir, String name, LoraOptions lora, int maxNumSeqs, Duration stepDelay) {
        return new TestServer(HttpSettings.local(), maxNumSeqs, stepDelay, modelDir, name, Optional.of(lora));
    }

    Client client() {
        return new Client(base);
    }

    /** Each step takes at least {@code delay} more (without blocking the step thread). */
    private static StepExecutor slow(StepExecutor inner, Duration delay) {
        return new StepExecutor() {
            @Override
            public CompletionStage<StepResult> execute(StepPlan plan) {
                return inner.execute(plan).thenCompose(r -> CompletableFuture.supplyAsync(() -> r,
                        CompletableFuture.delayedExecutor(delay.toNanos(), TimeUnit.NANOSECONDS)));
            }

            @Override
            public java.util.concurrent.CompletionStage<Void> reset() {
                return inner.reset();
            }

            @Override
            public void close() {
                inner.close();
            }
        };
    }

    @Override
    public void close() {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().join();
        adapterLoader.shutdownNow();
        // NOTE: the Engine's PostStop stopped the step thread; the backend is the replica's to close.
        replica.close();
    }
}
