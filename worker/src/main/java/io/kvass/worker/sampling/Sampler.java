package io.kvass.worker.sampling;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Chooses the next token of one sequence from its logits row and records it in the sequence's
 * state (output counts, RNG position). Implementations hold scratch buffers: one per thread.
 */
@FunctionalInterface
public interface Sampler {

  /**
   * Samples from {@code logits[offset, offset + vocabSize)}, which is left unchanged.
   * Appends the token to {@code state}.
   */
  SampledToken sample(float[] logits, int offset, int vocabSize, SequenceSamplingState state);

  default SampledToken sample(float[] logits, SequenceSamplingState state) {
    return sample(logits, 0, logits.length, state);
  }

  /**
   * One token per sequence from a batch's logits.
   *
   * @param logits {@code [states.size(), vocabSize]}, row-major
   */
  default List<SampledToken> sampleBatch(
      float[] logits, int vocabSize, List<SequenceSamplingState> states) {
    Objects.checkFromIndexSize(0, (long) states.size() * vocabSize, logits.length);
    List<SampledToken> tokens = new ArrayList<>(states.size());
    for (int row = 0; row < states.size(); row++) {
      tokens.add(sample(logits, row * vocabSize, vocabSize, states.get(row)));
    }
    return tokens;
  }

  /** The CPU sampler with vLLM's default logits processors (min_tokens, penalties). */
  static Sampler cpu() {
    return new CpuSampler();
  }
}
