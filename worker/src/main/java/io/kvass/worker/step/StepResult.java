package io.kvass.worker.step;

import io.kvass.worker.wire.CrossNode;

import io.kvass.worker.sampling.SampledToken;
import java.util.List;

/**
 * The worker's answer: the token sampled for every sequence whose known tokens are now all computed
 * (sequences in the middle of a chunked prefill sample nothing). Positional, so the scheduler reads
 * it without a lookup per sequence.
 *
 * @param sampledAt ascending indexes into the plan's sequences (its new ones, then its continuing ones)
 *                  of the sequences that sampled; {@code tokens.get(i)} belongs to {@code sampledAt[i]}
 */
public record StepResult(long stepId, int[] sampledAt, List<SampledToken> tokens) implements CrossNode {

    public StepResult {
        tokens = List.copyOf(tokens);
        if (sampledAt.length != tokens.size()) {
            throw new IllegalArgumentException(sampledAt.length + " positions for " + tokens.size() + " tokens");
        }
        for (int i = 1; i < sampledAt.length; i++) {
            if (sampledAt[i] <= sampledAt[i - 1]) {
                throw new IllegalArgumentException("sampled positions must ascend: " + java.util.Arrays.toString(sampledAt));
            }
        }
    }
}
