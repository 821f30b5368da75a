package io.kvass.kvpaging;

import java.util.Objects;

/** A request as the KV cache sees it: its id and the scope its blocks are cached under. */
public record RequestKey(String requestId, CacheScope scope) {
    public RequestKey {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(scope, "scope");
    }
}
