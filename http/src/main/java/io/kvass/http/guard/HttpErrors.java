package io.kvass.http.guard;

import io.kvass.http.api.ApiError;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.headers.Connection;
import org.apache.pekko.util.ByteString;

/**
 * The errors the HTTP layer answers itself, before any route runs, in OpenAI's shape like every other
 * error: bad framing, limits of the request line and headers, too slow, too many connections.
 */
public final class HttpErrors {
    private HttpErrors() {
    }

    /** The {@link ApiError} for a status the HTTP parser chose ({@code summary}: its reason, without details). */
    public static ApiError parsing(int status, String summary) {
        String message = summary == null || summary.isBlank() ? "The request is malformed." : summary;
        String code = switch (status) {
            case 400 -> "bad_request";
            case 408 -> "request_timeout";
            case 413 -> "request_too_large";
            case 414 -> "uri_too_long";
            case 431 -> "request_header_fields_too_large";
            case 501 -> "not_implemented";
            case 505 -> "http_version_not_supported";
            default -> null;
        };
        String type = status >= 500 ? "server_error" : "invalid_request_error";
        return new ApiError(status, type, message, Optional.empty(), Optional.ofNullable(code));
    }

    public static ApiError headersTooSlow(java.time.Duration limit) {
        return new ApiError(408, "invalid_request_error", "The request's headers did not arrive within "
                + limit.toMillis() + " ms.", Optional.empty(), Optional.of("request_timeout"));
    }

    public static ApiError tooManyConnections(int limit) {
        return new ApiError(429, "rate_limit_error", "Too many open connections from your address (the limit is "
                + limit + "). Reuse connections or close idle ones.", Optional.empty(),
                Optional.of("too_many_connections"));
    }

    public static ApiError serverFull(int limit) {
        return new ApiError(503, "server_error", "The server has its limit of " + limit
                + " open connections. Retry later.", Optional.empty(), Optional.of("overloaded"));
    }

    /** {@code error} as a response that closes its connection. */
    public static HttpResponse closing(ApiError error) {
        return HttpResponse.create().withStatus(error.status()).addHeader(Connection.create("close"))
                .withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON,
                        error.toJson().toString().getBytes(StandardCharsets.UTF_8)));
    }

    /** {@code error} as the bytes of a whole HTTP/1.1 response that closes its connection, for the byte layer. */
    static ByteString raw(ApiError error, String reason) {
        byte[] body = error.toJson().toString().getBytes(StandardCharsets.UTF_8);
        String head = "HTTP/1.1 " + error.status() + " " + reason + "\r\n"
                + "Content-Type: application/json\r\n"
                + "Content-Length: " + body.length + "\r\n"
                + "Connection: close\r\n\r\n";
        return ByteString.fromArray(head.getBytes(StandardCharsets.US_ASCII)).concat(ByteString.fromArray(body));
    }
}
