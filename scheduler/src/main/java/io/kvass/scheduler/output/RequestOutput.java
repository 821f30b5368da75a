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
 * @param index which of the request's n completions
 */
public record RequestOutput(String requestId, int index, List<SampledToken> tokens, String text, Optional<Finish> finish,
                            int promptTokens, int completionTokens) {

    public RequestOutput {
        tokens = List.copyOf(tokens);
    }

    public boolean finished() {
        return finish.isPresent();
    }
}
