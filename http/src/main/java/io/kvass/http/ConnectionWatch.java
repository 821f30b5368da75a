package io.kvass.http;

import java.util.concurrent.CompletableFuture;
import org.apache.pekko.Done;
import org.apache.pekko.NotUsed;
import org.apache.pekko.http.javadsl.model.AttributeKey;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.stream.javadsl.Flow;

/**
 * Tells a request when its client connection closed. Pekko HTTP gives a strict (non-streamed) response
 * no signal when the client goes away while it is being computed; the request side of the connection
 * does end, so each connection's handler watches it and hands every request a future for that moment.
 */
final class ConnectionWatch {
    @SuppressWarnings({"unchecked", "rawtypes"})
    static final AttributeKey<CompletableFuture<Done>> CLOSED =
            (AttributeKey) AttributeKey.create("kvass-connection-closed", CompletableFuture.class);

    private ConnectionWatch() {
    }

    /** {@code handler} materialized once per connection, with {@link #CLOSED} on each request. */
    static Flow<HttpRequest, HttpResponse, ?> perConnection(Flow<HttpRequest, HttpResponse, NotUsed> handler) {
        return Flow.fromMaterializer((mat, attributes) -> {
            CompletableFuture<Done> closed = new CompletableFuture<>();
            return Flow.<HttpRequest>create()
                    .watchTermination((NotUsed n, java.util.concurrent.CompletionStage<Done> done) -> {
                        done.whenComplete((d, failure) -> closed.complete(Done.getInstance()));
                        return NotUsed.getInstance();
                    })
                    .map(request -> request.addAttribute(CLOSED, closed))
                    .via(handler);
        });
    }
}
