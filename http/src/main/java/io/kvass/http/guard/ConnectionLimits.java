package io.kvass.http.guard;

import java.time.Duration;

/**
 * What one client may hold of the server ({@code kvass.http} in the configuration).
 *
 * @param headerTimeout            from a request's first byte to its last header line; past it the
 *                                 connection gets a 408 and is closed (a slow sender cannot hold it for
 *                                 the whole idle timeout)
 * @param bodyTimeout              from the headers to the body's last byte (408 past it)
 * @param maxConnections           open connections in all; more are answered 503 and closed
 * @param maxConnectionsPerClient  open connections from one IP address; more are answered 429 and closed
 */
public record ConnectionLimits(Duration headerTimeout, Duration bodyTimeout, int maxConnections,
                               int maxConnectionsPerClient) {

    public static final ConnectionLimits DEFAULT = new ConnectionLimits(Duration.ofSeconds(20), Duration.ofSeconds(60),
            1024, 256);

    public ConnectionLimits {
        if (headerTimeout.isNegative() || headerTimeout.isZero() || bodyTimeout.isNegative() || bodyTimeout.isZero()) {
            throw new IllegalArgumentException("header-timeout and body-timeout must be positive");
        }
        if (maxConnections < 1 || maxConnectionsPerClient < 1) {
            throw new IllegalArgumentException("max-connections and max-connections-per-client must be positive");
        }
    }
}
