package io.kvass.http;

import io.kvass.kvpaging.CacheScope;
import io.kvass.worker.lora.AdapterSpec;
import java.util.Objects;
import java.util.Optional;

/**
 * What a request's {@code model} field picked: a served base model, or one of its LoRA adapters.
 *
 * @param adapter empty for the base model
 */
public record RequestedModel(ServedModel base, Optional<AdapterSpec> adapter) {

    public RequestedModel {
        Objects.requireNonNull(base, "base");
        Objects.requireNonNull(adapter, "adapter");
    }

    public static RequestedModel base(ServedModel model) {
        return new RequestedModel(model, Optional.empty());
    }

    /** The name the client asked for, and the one responses carry (vLLM: the adapter's name for a LoRA request). */
    public String name() {
        return adapter.map(AdapterSpec::name).orElse(base.name());
    }

    /** Keys the request's cached prefixes: K/V computed under one adapter is never reused under another. */
    public CacheScope scope() {
        return adapter.map(a -> new CacheScope(a.id(), "")).orElse(CacheScope.BASE);
    }
}
