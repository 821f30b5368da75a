package io.kvass.worker.sampling;

/**
 * vLLM's {@code apply_penalties}, touching only tokens the sequence has seen: O(distinct
 * prompt + output tokens) per step instead of building vocab-sized masks.
 *
 * <p>Formulas (vLLM order, float arithmetic):
 * <ul>
 *   <li>repetition, for tokens in prompt or output: {@code l > 0 ? l / r : l * r}
 *   <li>frequency: {@code l -= f * count(output)}
 *   <li>presence: {@code l -= p} for tokens in the output
 * </ul>
 */
public final class Penalties {
  private Penalties() {}

  public static void apply(float[] logits, SequenceSamplingState state) {
    SamplingParams p = state.params();
    if (p.repetitionPenalty() != 1f) {
      applyRepetition(logits, state.promptTokens(), state.outputCounts(), p.repetitionPenalty());
    }
    if (p.frequencyPenalty() != 0f || p.presencePenalty() != 0f) {
      applyFrequencyAndPresence(
          logits, state.outputCounts(), p.frequencyPenalty(), p.presencePenalty());
    }
  }

  /** Each token in {@code prompt} ∪ {@code output} is scaled once, even if in both. */
  public static void applyRepetition(
      float[] logits, TokenSet prompt, OutputTokenCounts output, float penalty) {
    for (int i = 0; i < prompt.size(); i++) {
      scale(logits, prompt.get(i), penalty);
    }
    for (int i = 0; i < output.distinct(); i++) {
      int id = output.tokenAt(i);
      if (!prompt.contains(id)) {
        scale(logits, id, penalty);
      }
    }
  }

  public static void applyFrequencyAndPresence(
      float[] logits, OutputTokenCounts output, float frequency, float presence) {
    for (int i = 0; i < output.distinct(); i++) {
      int id = output.tokenAt(i);
      if (id < logits.length) {
        // Two subtractions, as vLLM, so results match its float32 arithmetic bit for bit.
        logits[id] -= frequency * output.countAt(i);
        logits[id] -= presence;
      }
    }
  }

  // Ids past the row (e.g. a prompt token outside a truncated vocab) have no logit to penalize;
  // vLLM drops them the same way through its padded scatter.
  private static void scale(float[] logits, int id, float penalty) {
    if (id < logits.length) {
      float l = logits[id];
      logits[id] = l > 0f ? l / penalty : l * penalty;
    }
  }
}
