package io.kvass.http;

import io.kvass.http.guard.ConnectionLimits;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * How the API server listens and what it admits ({@code kvass.http} in the configuration).
 *
 * @param apiKey          when present, {@code /v1/*} and {@code /admin/*} need {@code Authorization: Bearer <key>}
 * @param maxBodyBytes    larger request bodies get a 413
 * @param maxWaiting      requests a gateway holds for a replica with room; one more gets a 503
 * @param requestTimeout  how long a non-streamed request may take
 * @param idleTimeout     how long a connection may stay silent (a queued stream is silent)
 * @param drainTimeout    on shutdown, how long in-flight requests may run before they are aborted
 * @param limits          how long a client may take to send a request, how many connections it may hold
 * @param toolCallParser  {@code --tool-call-parser}: hermes, llama3_json, mistral, or auto (from the chat template)
 */
public record HttpSettings(String host, int port, Optional<String> apiKey, long maxBodyBytes, int maxWaiting,
                           Duration requestTimeout, Duration idleTimeout, Duration drainTimeout,
                           ConnectionLimits limits, String toolCallParser) {

    /** With the default {@link ConnectionLimits} and the tool-call parser picked from the chat template. */
    public HttpSettings(String host, int port, Optional<String> apiKey, long maxBodyBytes, int maxWaiting,
                        Duration requestTimeout, Duration idleTimeout, Duration drainTimeout) {
        this(host, port, apiKey, maxBodyBytes, maxWaiting, requestTimeout, idleTimeout, drainTimeout,
                ConnectionLimits.DEFAULT, "auto");
    }

    public HttpSettings {
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(limits, "limits");
        Objects.requireNonNull(toolCallParser, "toolCallParser");
        apiKey = apiKey.filter(k -> !k.isEmpty());
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be in 0..65535, got " + port);
        }
        if (maxBodyBytes < 1 || maxWaiting < 1) {
            throw new IllegalArgumentException("max-body-size and max-waiting must be positive");
        }
    }

    /** Loopback, a free port, no key: for tests. */
    public static HttpSettings local() {
        return new HttpSettings("127.0.0.1", 0, Optional.empty(), 8L << 20, 10_000, Duration.ofMinutes(10),
                Duration.ofMinutes(5), Duration.ofSeconds(10));
    }

    public HttpSettings withApiKey(String key) {
        return new HttpSettings(host, port, Optional.of(key), maxBodyBytes, maxWaiting, requestTimeout, idleTimeout,
                drainTimeout, limits, toolCallParser);
    }

    public HttpSettings withLimits(long bodyBytes, int waiting) {
        return new HttpSettings(host, port, apiKey, bodyBytes, waiting, requestTimeout, idleTimeout, drainTimeout,
                limits, toolCallParser);
    }

    public HttpSettings withRequestTimeout(Duration timeout) {
        return new HttpSettings(host, port, apiKey, maxBodyBytes, maxWaiting, timeout, idleTimeout, drainTimeout,
                limits, toolCallParser);
    }

    public HttpSettings withToolCallParser(String parser) {
        return new HttpSettings(host, port, apiKey, maxBodyBytes, maxWaiting, requestTimeout, idleTimeout, drainTimeout,
                limits, parser);
    }

    public HttpSettings withDrainTimeout(Duration drain) {
        return new HttpSettings(host, port, apiKey, maxBodyBytes, maxWaiting, requestTimeout, idleTimeout, drain,
                limits, toolCallParser);
    }

    public HttpSettings withConnectionLimits(ConnectionLimits connectionLimits) {
        return new HttpSettings(host, port, apiKey, maxBodyBytes, maxWaiting, requestTimeout, idleTimeout, drainTimeout,
                connectionLimits, toolCallParser);
    }
}
