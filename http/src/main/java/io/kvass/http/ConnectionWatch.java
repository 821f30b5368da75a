package io.kvass.http;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.NotUsed;
import org.apache.pekko.http.javadsl.model.AttributeKey;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.stream.javadsl.Flow;

/**
 * Tells a request when its client connection closed. Pekko HTTP gives a strict (non-streamed) response
 * no signal when the client goes away while it is being computed; the request side of the connection
 * does end, so each connection's handler watches it and hands every request its {@link Closing}.
 */
final class ConnectionWatch {
    static final AttributeKey<Closing> CLOSED = AttributeKey.create("kvass-connection-closed", Closing.class);

    private ConnectionWatch() {
    }

    /**
     * One connection's end, with the actions of the requests still waiting for it. NOTE: a request removes
     * its action once answered: a kept-alive connection serves thousands of requests, and a callback per
     * request that stayed until the connection closed would hold each one's answer that long (the soak's
     * live heap grew by ~100 MB in 30 minutes that way, with a future's dependents).
     */
    static final class Closing {
        private final Set<Runnable> actions = ConcurrentHashMap.newKeySet();
        private final AtomicBoolean closed = new AtomicBoolean();

        /** Runs {@code action} when the connection closes (at once if it has); returns what cancels it. */
        Runnable onClose(Runnable action) {
            actions.add(action);
            if (closed.get() && actions.remove(action)) {
                action.run();
            }
            return () -> actions.remove(action);
        }

        void close() {
            closed.set(true);
            for (Runnable action : actions) {
                if (actions.remove(action)) {
                    action.run();
                }
            }
        }

        int pending() {
            return actions.size();
        }
    }

    /** {@code handler} materialized once per connection, with {@link #CLOSED} on each request. */
    static Flow<HttpRequest, HttpResponse, ?> perConnection(Flow<HttpRequest, HttpResponse, NotUsed> handler) {
        return Flow.fromMaterializer((mat, attributes) -> {
            Closing closing = new Closing();
            return Flow.<HttpRequest>create()
                    .watchTermination((NotUsed n, java.util.concurrent.CompletionStage<org.apache.pekko.Done> done) -> {
                        done.whenComplete((d, failure) -> closing.close());
                        return NotUsed.getInstance();
                    })
                    .map(request -> request.addAttribute(CLOSED, closing))
                    .via(handler);
        });
    }
}
