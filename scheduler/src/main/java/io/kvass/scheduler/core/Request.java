package io.kvass.scheduler.core;

import io.kvass.kvpaging.CacheScope;
import io.kvass.worker.sampling.SamplingParams;
import java.util.Objects;

/**
 * A generation request as the scheduler receives it: already tokenized and validated.
 *
 * @param scope       adapter id and tenant cache salt: what the request's cached prefixes are keyed by
 * @param adapterSlot the backend slot of its LoRA adapter, 0 for the base model
 * @param priority    lower runs first under the priority policy (vLLM's convention)
 */
public record Request(String requestId, int[] promptTokenIds, SamplingParams params, CacheScope scope,
                      int adapterSlot, int priority, long arrivalNanos) {

    public Request {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(params, "params");
        Objects.requireNonNull(scope, "scope");
        if (promptTokenIds.length == 0) {
            throw new IllegalArgumentException("the prompt must have at least one token");
        }
        promptTokenIds = promptTokenIds.clone();
    }

    /** A base-model request with default priority, arriving now. */
    public static Request of(String requestId, int[] promptTokenIds, SamplingParams params) {
        return new Request(requestId, promptTokenIds, params, CacheScope.BASE, 0, 0, System.nanoTime());
    }
}
