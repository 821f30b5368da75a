package io.kvass.http;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kvass.http.guard.GuardedServer;
import io.kvass.http.guard.JsonParsingErrorHandler;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.http.stream.ActiveStreams;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.settings.ServerSettings;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The bound API server of one node, and its graceful stop. */
public final class HttpServer {
    private static final Logger LOG = LoggerFactory.getLogger(HttpServer.class);
    /** After the drain, how long aborted streams get to write their last chunk. */
    private static final Duration ABORT_GRACE = Duration.ofSeconds(2);
    private static final Duration FLUSH_GRACE = Duration.ofMillis(200);

    private final GuardedServer binding;
    private final ApiRoutes routes;
    private final ActiveStreams streams;

    private HttpServer(GuardedServer binding, ApiRoutes routes, ActiveStreams streams) {
        this.binding = binding;
        this.routes = routes;
        this.streams = streams;
    }

    public static CompletionStage<HttpServer> start(ActorSystem<?> system, HttpSettings settings,
                                                    List<ServedModel> models, ServingMetrics metrics) {
        return start(system, settings, models, metrics, Optional.empty());
    }

    /** @param cluster what {@code /admin/nodes} and {@code /admin/deployments} report and change */
    public static CompletionStage<HttpServer> start(ActorSystem<?> system, HttpSettings settings,
                                                    List<ServedModel> models, ServingMetrics metrics,
                                                    Optional<ClusterAdmin> cluster) {
        ActiveStreams streams = new ActiveStreams();
        ApiRoutes routes = new ApiRoutes(system, settings, models, metrics, streams, cluster);
        Config server = ConfigFactory.parseMap(Map.of(
                "pekko.http.server.request-timeout", settings.requestTimeout().toMillis() + "ms",
                "pekko.http.server.idle-timeout", settings.idleTimeout().toMillis() + "ms",
                "pekko.http.server.parsing.max-content-length", settings.maxBodyBytes(),
                // HEAD is answered as GET without the body (HTTP requires HEAD wherever GET is).
                "pekko.http.server.transparent-head-requests", "on",
                "pekko.http.server.parsing.error-handler", JsonParsingErrorHandler.class.getName()))
                .withFallback(system.settings().config());
        return GuardedServer.bind(system, settings.host(), settings.port(), ServerSettings.create(server),
                        settings.idleTimeout(), settings.limits(), ConnectionWatch.perConnection(routes.route().flow(system)))
                .thenApply(binding -> {
                    LOG.info("serving {} on http://{}:{}", models.stream().map(ServedModel::name).toList(),
                            settings.host(), binding.address().getPort());
                    return new HttpServer(binding, routes, streams);
                });
    }

    public InetSocketAddress address() {
        return binding.address();
    }

    public ActiveStreams streams() {
        return streams;
    }

    /**
     * Stops as CoordinatedShutdown runs: unbind first (no new connections; new requests on open ones
     * get 503), then let in-flight requests finish for up to {@code drain} (bounded by the phase's
     * own timeout), then abort the rest so that each ends cleanly.
     */
    public HttpServer stopOnShutdown(ActorSystem<?> system, Duration drain) {
        CoordinatedShutdown shutdown = CoordinatedShutdown.get(system);
        long phase = shutdown.timeout(CoordinatedShutdown.PhaseServiceRequestsDone()).toMillis();
        Duration bounded = Duration.ofMillis(Math.max(0, Math.min(drain.toMillis(), phase - ABORT_GRACE.toMillis() * 2)));
        shutdown.addTask(CoordinatedShutdown.PhaseServiceUnbind(), "kvass-http-unbind", this::unbind);
        shutdown.addTask(CoordinatedShutdown.PhaseServiceRequestsDone(), "kvass-http-drain", () -> drain(bounded));
        return this;
    }

    public CompletionStage<Done> unbind() {
        routes.startDraining();
        return binding.unbind();
    }

    /** Waits for in-flight requests up to {@code deadline}, aborts the rest, then closes every connection. */
    public CompletionStage<Done> drain(Duration deadline) {
        routes.startDraining();
        LOG.info("draining {} in-flight streams (up to {} ms)", streams.size(), deadline.toMillis());
        return waitUntil(streams::idle, System.nanoTime() + deadline.toNanos())
                .thenCompose(d -> {
                    if (streams.size() > 0) {
                        LOG.info("aborting {} streams still running", streams.size());
                        streams.shutdownAll();
                    }
                    return waitUntil(streams::idle, System.nanoTime() + ABORT_GRACE.toNanos());
                })
                // NOTE: terminate() closes connections whose response headers went out, streamed bodies
                // included; so it comes only once every body has ended, and a moment for the last bytes.
                .thenCompose(d -> CompletableFuture.runAsync(() -> { },
                        CompletableFuture.delayedExecutor(FLUSH_GRACE.toMillis(), TimeUnit.MILLISECONDS)))
                .thenCompose(d -> binding.terminate(ABORT_GRACE));
    }

    private static CompletionStage<Done> waitUntil(BooleanSupplier condition, long deadlineNanos) {
        if (condition.getAsBoolean() || System.nanoTime() >= deadlineNanos) {
            return CompletableFuture.completedFuture(Done.getInstance());
        }
        return CompletableFuture.runAsync(() -> { }, CompletableFuture.delayedExecutor(20, TimeUnit.MILLISECONDS))
                .thenCompose(v -> waitUntil(condition, deadlineNanos));
    }
}
