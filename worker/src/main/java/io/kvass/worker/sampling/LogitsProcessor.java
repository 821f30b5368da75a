package io.kvass.worker.sampling;

/**
 * One in-place edit of a sequence's logits before the token is chosen (vLLM's logits
 * processors): masks, biases, penalties. Samplers run a list of them in order, so a new rule
 * (logit_bias, allowed_token_ids, bad words) is a new processor, not an {@code if} in the sampler.
 */
@FunctionalInterface
public interface LogitsProcessor {

  /**
   * Edits {@code logits} (one row, {@code logits.length} == vocabulary size) in place.
   * Must not touch the state's RNG.
   */
  void apply(float[] logits, SequenceSamplingState state);

  /** vLLM's MinTokensLogitsProcessor: no EOS / stop token until min_tokens are generated. */
  LogitsProcessor MIN_TOKENS = (logits, state) -> {
    if (state.outputLength() >= state.params().minTokens()) {
      return;
    }
    TokenSet stopIds = state.minTokensStopIds();
    for (int i = 0; i < stopIds.size(); i++) {
      int id = stopIds.get(i);
      if (id < logits.length) {
        logits[id] = Float.NEGATIVE_INFINITY;
      }
    }
  };

  /** Structured output: tokens the sequence's grammar does not allow next get -inf. */
  LogitsProcessor GRAMMAR = (logits, state) -> state.grammar().ifPresent(g -> GrammarMask.apply(g.mask(), logits));

  /** Repetition, then frequency, then presence penalty, as vLLM's {@code apply_penalties}. */
  LogitsProcessor PENALTIES = Penalties::apply;
}
