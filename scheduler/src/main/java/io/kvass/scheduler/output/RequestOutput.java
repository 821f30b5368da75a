package io.kvass.scheduler.output;

import io.kvass.scheduler.core.Finish;
import io.kvass.worker.sampling.SampledToken;
import java.util.List;
import java.util.Optional;

/**
 * What one step added to one completion of a request: new token ids (with their logprobs when
 * asked), the text they completed, and the finish if it ended. The last output of a completion
 * always carries its finish.
 *
 * @param index          which of the request's n completions
 * @param scheduledNanos when the completion's sequence was first scheduled (System.nanoTime()), 0 if unknown:
 *                       its queue time ends there, its prefill begins (vLLM's request timing histograms)
 */
public record RequestOutput(String requestId, int index, List<SampledToken> tokens, String text, Optional<Finish> finish,
                            int promptTokens, int completionTokens, long scheduledNanos) {

    public RequestOutput {
        tokens = List.copyOf(tokens);
    }

    /** Without a scheduling time. */
    public RequestOutput(String requestId, int index, List<SampledToken> tokens, String text, Optional<Finish> finish,
                         int promptTokens, int completionTokens) {
        this(requestId, index, tokens, text, finish, promptTokens, completionTokens, 0);
    }

    public boolean finished() {
        return finish.isPresent();
    }
}
