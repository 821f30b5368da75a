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
 * @param queuedNanos    how long the completion's sequence waited before its first step; -1 if unknown
 * @param runningNanos   how long since its first step, when this output was made; -1 if unknown. Both are
 *                       durations on the engine's clock, so they mean the same on any node (vLLM's request timing
 *                       histograms: queue, prefill up to the first output, decode from there, inference in all)
 */
public record RequestOutput(String requestId, int index, List<SampledToken> tokens, String text, Optional<Finish> finish,
                            int promptTokens, int completionTokens, long queuedNanos, long runningNanos) {

    public RequestOutput {
        tokens = List.copyOf(tokens);
    }

    /** Without timings. */
    public RequestOutput(String requestId, int index, List<SampledToken> tokens, String text, Optional<Finish> finish,
                         int promptTokens, int completionTokens) {
        this(requestId, index, tokens, text, finish, promptTokens, completionTokens, -1, -1);
    }

    public boolean finished() {
        return finish.isPresent();
    }
}
