package io.kvass.http.stream;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.pekko.actor.typed.ActorRef;

/** The request streams alive on this node: what a graceful shutdown waits for, then aborts. */
public final class ActiveStreams {
    private final Set<ActorRef<RequestStream.Command>> streams = ConcurrentHashMap.newKeySet();

    void add(ActorRef<RequestStream.Command> stream) {
        streams.add(stream);
    }

    void remove(ActorRef<RequestStream.Command> stream) {
        streams.remove(stream);
    }

    public int size() {
        return streams.size();
    }

    /** Asks every live stream to abort its request and close its response cleanly. */
    public void shutdownAll() {
        streams.forEach(s -> s.tell(RequestStream.Shutdown.INSTANCE));
    }
}
