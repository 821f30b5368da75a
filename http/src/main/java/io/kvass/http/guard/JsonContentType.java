package io.kvass.http.guard;

import io.kvass.http.api.ApiError;
import java.util.Locale;
import java.util.Optional;

/**
 * Request bodies must say they are JSON. A browser sends a cross-site POST without asking first (no
 * CORS preflight) only with {@code text/plain}, form types or no {@code Content-Type}; refusing those
 * keeps a web page from driving an unauthenticated server ({@code /v1/load_lora_adapter} included).
 */
public final class JsonContentType {
    private JsonContentType() {
    }

    /**
     * Passes {@code application/json} and {@code application/*+json} (any parameters); else a 415.
     * NOTE: Pekko reports a body without Content-Type as {@code application/octet-stream}.
     */
    public static void require(String mediaType) {
        String type = mediaType.split(";", 2)[0].strip().toLowerCase(Locale.ROOT);
        if (type.equals("application/json") || (type.startsWith("application/") && type.endsWith("+json"))) {
            return;
        }
        throw new ApiError(415, "invalid_request_error", (type.isEmpty() ? "The request has no Content-Type"
                : "Content-Type " + type + " is not supported") + "; send the body as application/json.",
                Optional.empty(), Optional.of("unsupported_media_type"));
    }
}
