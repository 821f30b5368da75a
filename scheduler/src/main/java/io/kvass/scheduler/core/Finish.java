package io.kvass.scheduler.core;

import java.util.Optional;

/**
 * How a sequence finished. {@code stopReason} is vLLM's field: the stop token id or stop string that
 * ended it, empty for EOS and length.
 */
public record Finish(FinishReason reason, Optional<Object> stopReason) {

    public static Finish of(FinishReason reason) {
        return new Finish(reason, Optional.empty());
    }
}
