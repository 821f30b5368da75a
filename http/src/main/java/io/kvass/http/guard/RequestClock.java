package io.kvass.http.guard;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.ResponseEntity;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;

/**
 * One connection's requests as the application sees them: how many arrived (headers parsed) and how
 * many are open (no response finished yet). {@link SlowRequestGuard} reads it from the byte side: bytes
 * that arrive while nothing is open start a new request, whose headers must then arrive in time.
 */
final class RequestClock {
    private final AtomicLong arrived = new AtomicLong();
    private final AtomicInteger open = new AtomicInteger();

    HttpRequest arrived(HttpRequest request) {
        open.incrementAndGet();
        arrived.incrementAndGet();
        return request;
    }

    /** The response, whose end (the last byte of a streamed body) closes its request. */
    HttpResponse responding(HttpResponse response) {
        ResponseEntity entity = response.entity();
        if (entity.isKnownEmpty() || entity instanceof org.apache.pekko.http.javadsl.model.HttpEntity.Strict) {
            open.decrementAndGet();
            return response;
        }
        var scalaEntity = (org.apache.pekko.http.scaladsl.model.ResponseEntity) entity;
        Flow<ByteString, ByteString, Object> watched = Flow.<ByteString>create()
                .watchTermination((mat, done) -> {
                    done.whenComplete((d, failure) -> open.decrementAndGet());
                    return (Object) mat;
                });
        return response.withEntity(scalaEntity.transformDataBytes(watched.asScala()));
    }

    long arrivedCount() {
        return arrived.get();
    }

    int openCount() {
        return open.get();
    }
}
