package io.kvass.worker.step;

import io.kvass.worker.sampling.SampledToken;
import java.util.Map;

/**
 * The worker's answer: the token sampled for every sequence whose known tokens are now all computed
 * (sequences in the middle of a chunked prefill sample nothing).
 */
public record StepResult(long stepId, Map<String, SampledToken> sampled) {

    public StepResult {
        sampled = Map.copyOf(sampled);
    }
}
