package io.kvass.http.guard;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.settings.ServerSettings;
import org.apache.pekko.stream.KillSwitches;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.UniqueKillSwitch;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.TLSProtocol;
import org.apache.pekko.stream.javadsl.BidiFlow;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.TLSPlacebo;
import org.apache.pekko.stream.javadsl.Tcp;
import org.apache.pekko.util.ByteString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pekko HTTP's server, bound over TCP by hand so that each connection passes the guards first: the
 * connection limits (in all and per client address) and {@link SlowRequestGuard} on its bytes. What
 * {@code Http.newServerAt(...).bindFlow} would do otherwise (same parser, settings, idle timeout).
 */
public final class GuardedServer {
    private static final Logger LOG = LoggerFactory.getLogger(GuardedServer.class);

    private final Tcp.ServerBinding binding;
    /** The open connections' switches, each removed when its connection ends. */
    private final Set<Switches> open;
    private final ClientConnections connections;
    private CompletionStage<Done> unbound;

    /**
     * One connection's switches: {@code stopReading} ends its requests side (it finishes the responses it
     * owes, then closes), {@code cut} ends it at once. NOTE: per connection, not a SharedKillSwitch per server:
     * a shared switch keeps every stage that ever used it until it fires, so each closed connection's whole
     * stream (its last request and response included) stayed on the heap; the soak showed it.
     */
    private record Switches(UniqueKillSwitch stopReading, UniqueKillSwitch cut) {
    }

    private GuardedServer(Tcp.ServerBinding binding, Set<Switches> open, ClientConnections connections) {
        this.binding = binding;
        this.open = open;
        this.connections = connections;
    }

    public static CompletionStage<GuardedServer> bind(ActorSystem<?> system, String host, int port,
                                                      ServerSettings settings, Duration idleTimeout,
                                                      ConnectionLimits limits,
                                                      Flow<HttpRequest, HttpResponse, ?> handler) {
        Materializer mat = Materializer.matFromSystem(system);
        Set<Switches> open = ConcurrentHashMap.newKeySet();
        ClientConnections connections = new ClientConnections(limits.maxConnections(), limits.maxConnectionsPerClient());
        ByteString slow = HttpErrors.raw(HttpErrors.headersTooSlow(limits.headerTimeout()), "Request Timeout");
        Http http = Http.get(system);
        return Tcp.get(system).bind(host, port, settings.getBacklog(), settings.getSocketOptions(), false,
                        Optional.of(idleTimeout))
                .to(Sink.foreach(connection -> {
                    // NOTE: a failure here must not end the accept stream (the server would stop accepting).
                    try {
                        accept(connection, http, settings, limits, connections, handler, open, slow, mat);
                    } catch (RuntimeException e) {
                        LOG.error("could not serve a connection from {}", connection.remoteAddress(), e);
                        connection.handleWith(Flow.fromSinkAndSource(Sink.cancelled(),
                                org.apache.pekko.stream.javadsl.Source.<ByteString>empty()), mat);
                    }
                }))
                .run(mat)
                .thenApply(binding -> new GuardedServer(binding, open, connections));
    }

    private static void accept(Tcp.IncomingConnection connection, Http http, ServerSettings settings,
                               ConnectionLimits limits, ClientConnections connections,
                               Flow<HttpRequest, HttpResponse, ?> handler, Set<Switches> open, ByteString slow,
                               Materializer mat) {
        InetSocketAddress remote = connection.remoteAddress();
        var layer = layer(http, settings, remote);
        switch (connections.acquire(remote.getAddress())) {
            case ADMITTED -> {
                try {
                    RequestClock clock = new RequestClock();
                    Flow<HttpRequest, HttpResponse, NotUsed> app = Flow.<HttpRequest>create()
                            .map(clock::arrived).via(handler).map(clock::responding);
                    Flow<ByteString, ByteString, Switches> guarded = Flow.<ByteString>create()
                            .viaMat(KillSwitches.single(), Keep.right())
                            .via(BidiFlow.fromGraph(new SlowRequestGuard(clock, limits.headerTimeout(), slow))
                                    .join(layer.reversed().join(app)))
                            .viaMat(KillSwitches.single(), (UniqueKillSwitch in, UniqueKillSwitch out) ->
                                    new Switches(in, out))
                            .watchTermination((switches, done) -> {
                                open.add(switches);
                                done.whenComplete((d, failure) -> {
                                    open.remove(switches);
                                    connections.release(remote.getAddress());
                                });
                                return switches;
                            });
                    connection.handleWith(guarded, mat);
                } catch (RuntimeException e) {
                    connections.release(remote.getAddress());
                    throw e;
                }
            }
            case CLIENT_FULL -> refuse(connection, layer, HttpErrors.tooManyConnections(limits.maxConnectionsPerClient()),
                    mat);
            case SERVER_FULL -> refuse(connection, layer, HttpErrors.serverFull(limits.maxConnections()), mat);
        }
    }

    /** Reads the request (so the client sees the answer, not a reset), answers {@code error}, closes. */
    private static void refuse(Tcp.IncomingConnection connection,
                               BidiFlow<HttpResponse, ByteString, ByteString, HttpRequest, NotUsed> layer,
                               io.kvass.http.api.ApiError error, Materializer mat) {
        LOG.debug("refusing a connection from {}: {}", connection.remoteAddress(), error.getMessage());
        HttpResponse response = HttpErrors.closing(error);
        connection.handleWith(layer.reversed().join(Flow.<HttpRequest>create().map(request -> {
            request.discardEntityBytes(mat);
            return response;
        })), mat);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static BidiFlow<HttpResponse, ByteString, ByteString, HttpRequest, NotUsed> layer(
            Http http, ServerSettings settings, InetSocketAddress remote) {
        // NOTE: TLSPlacebo hands the parser SessionBytes, the SslTlsInbound the server layer reads; Java's
        // generics do not see the subtype.
        BidiFlow placebo = TLSPlacebo.getInstance();
        BidiFlow<HttpResponse, TLSProtocol.SslTlsOutbound, TLSProtocol.SslTlsInbound, HttpRequest, NotUsed> server =
                http.serverLayer(settings, Optional.of(remote));
        return server.atop(placebo);
    }

    public InetSocketAddress address() {
        return binding.localAddress();
    }

    /** Connections open now (for tests and {@code /admin}). */
    public ClientConnections connections() {
        return connections;
    }

    /** No new connections; open ones keep going. */
    public synchronized CompletionStage<Done> unbind() {
        if (unbound == null) {
            unbound = binding.unbind().thenApply(v -> Done.getInstance());
        }
        return unbound;
    }

    /**
     * Unbinds, ends every connection's requests (each finishes the responses it owes, then closes) and
     * cuts what is still open after {@code grace}.
     */
    public CompletionStage<Done> terminate(Duration grace) {
        long deadline = System.nanoTime() + grace.toNanos();
        return unbind().thenCompose(d -> {
            open.forEach(sw -> sw.stopReading().shutdown());
            return closed(deadline);
        }).thenApply(v -> {
            open.forEach(sw -> sw.cut().abort(new java.io.IOException("the server stopped")));
            return Done.getInstance();
        });
    }

    private CompletionStage<Done> closed(long deadlineNanos) {
        if (connections.total() == 0 || System.nanoTime() >= deadlineNanos) {
            return CompletableFuture.completedFuture(Done.getInstance());
        }
        return CompletableFuture.runAsync(() -> { }, CompletableFuture.delayedExecutor(20, TimeUnit.MILLISECONDS))
                .thenCompose(v -> closed(deadlineNanos));
    }
}
