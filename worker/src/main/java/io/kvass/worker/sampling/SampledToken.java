package io.kvass.worker.sampling;

import java.util.List;

/**
 * The token chosen for one sequence in one step.
 *
 * @param tokenId the sampled token
 * @param logprob its log-probability under the raw model output (log-softmax before penalties and
 *     temperature); {@code NaN} when the request did not ask for logprobs, since computing it
 *     costs a pass over the vocabulary
 * @param topLogprobs the {@code logprobs} most likely tokens of the raw output, most likely first
 *     (ties: lower id first); empty when not requested
 */
public record SampledToken(int tokenId, float logprob, List<TokenLogprob> topLogprobs) {

  public SampledToken {
    if (tokenId < 0) {
      throw new IllegalArgumentException("tokenId must be non-negative, got " + tokenId);
    }
    topLogprobs = List.copyOf(topLogprobs);
  }

  static SampledToken withoutLogprobs(int tokenId) {
    return new SampledToken(tokenId, Float.NaN, List.of());
  }

  public boolean hasLogprob() {
    return !Float.isNaN(logprob);
  }
}
