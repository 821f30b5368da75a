package io.kvass.http.guard;

import java.net.InetAddress;
import java.util.HashMap;
import java.util.Map;

/** Counts open connections, in all and per client address, against their limits. Thread-safe. */
public final class ClientConnections {
    /** Why a connection was refused, or that it was admitted. */
    public enum Admission { ADMITTED, SERVER_FULL, CLIENT_FULL }

    private final int max;
    private final int maxPerClient;
    private final Map<InetAddress, Integer> open = new HashMap<>();
    private int total;

    public ClientConnections(int max, int maxPerClient) {
        this.max = max;
        this.maxPerClient = maxPerClient;
    }

    /** Counts the connection when admitted; an admitted connection must be {@link #release}d once. */
    public synchronized Admission acquire(InetAddress client) {
        if (total >= max) {
            return Admission.SERVER_FULL;
        }
        int mine = open.getOrDefault(client, 0);
        if (mine >= maxPerClient) {
            return Admission.CLIENT_FULL;
        }
        open.put(client, mine + 1);
        total++;
        return Admission.ADMITTED;
    }

    public synchronized void release(InetAddress client) {
        Integer mine = open.get(client);
        if (mine == null) {
            throw new IllegalStateException("release of " + client + " without a connection");
        }
        if (mine == 1) {
            open.remove(client); // NOTE: no entry per address ever seen, only per address connected now
        } else {
            open.put(client, mine - 1);
        }
        total--;
    }

    public synchronized int open(InetAddress client) {
        return open.getOrDefault(client, 0);
    }

    public synchronized int total() {
        return total;
    }
}
