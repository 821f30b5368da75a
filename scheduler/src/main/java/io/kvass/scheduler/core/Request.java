package io.kvass.scheduler.core;

import io.kvass.kvpaging.CacheScope;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.wire.CrossNode;
import java.util.Objects;

/**
 * A generation request as the scheduler receives it: already tokenized and validated.
 *
 * @param scope       adapter id and tenant cache salt: what the request's cached prefixes are keyed by
 * @param adapterSlot the backend slot of its LoRA adapter, 0 for the base model
 * @param priority    lower runs first under the priority policy (vLLM's convention)
 * @param resumeTokens output tokens already generated (and delivered) elsewhere: a request migrated from a lost
 *                    replica continues after them. They count as output (max_tokens, min_tokens, penalties, stop
 *                    strings, usage) but are not sent again. Only with n = 1.
 */
public record Request(String requestId, int[] promptTokenIds, SamplingParams params, CacheScope scope,
                      int adapterSlot, int priority, long arrivalNanos, int[] resumeTokens) implements CrossNode {

    public Request(String requestId, int[] promptTokenIds, SamplingParams params, CacheScope scope, int adapterSlot,
                   int priority, long arrivalNanos) {
        this(requestId, promptTokenIds, params, scope, adapterSlot, priority, arrivalNanos, new int[0]);
    }

    public Request {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(params, "params");
        Objects.requireNonNull(scope, "scope");
        if (promptTokenIds.length == 0) {
            throw new IllegalArgumentException("the prompt must have at least one token");
        }
        promptTokenIds = promptTokenIds.clone();
        resumeTokens = resumeTokens.clone();
        if (resumeTokens.length > 0 && params.n() != 1) {
            throw new IllegalArgumentException("a resumed request continues one completion, got n=" + params.n());
        }
        if (resumeTokens.length >= params.maxTokens()) {
            throw new IllegalArgumentException(resumeTokens.length + " tokens resumed of max_tokens " + params.maxTokens());
        }
    }

    /** A base-model request with default priority, arriving now. */
    public static Request of(String requestId, int[] promptTokenIds, SamplingParams params) {
        return new Request(requestId, promptTokenIds, params, CacheScope.BASE, 0, 0, System.nanoTime());
    }
}
