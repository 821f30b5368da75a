package io.kvass.http.stream;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The requests alive on this node, what a graceful shutdown waits for: their stream actors (until the
 * last output is written) and their response bodies (until the last byte left for the connection).
 */
public final class ActiveStreams {
    private final Set<ActorRef<RequestStream.Command>> streams = ConcurrentHashMap.newKeySet();
    private final AtomicInteger openBodies = new AtomicInteger();

    void add(ActorRef<RequestStream.Command> stream) {
        streams.add(stream);
    }

    void remove(ActorRef<RequestStream.Command> stream) {
        streams.remove(stream);
    }

    public int size() {
        return streams.size();
    }

    /** A streamed response body started flowing to its connection. */
    public void bodyOpened() {
        openBodies.incrementAndGet();
    }

    /** ... and ended (completed, or cancelled by the client). */
    public void bodyClosed() {
        openBodies.decrementAndGet();
    }

    /** Whether every request has finished, its response body included. */
    public boolean idle() {
        return streams.isEmpty() && openBodies.get() == 0;
    }

    /** Asks every live stream to abort its request and close its response cleanly. */
    public void shutdownAll() {
        streams.forEach(s -> s.tell(RequestStream.Shutdown.INSTANCE));
    }
}
