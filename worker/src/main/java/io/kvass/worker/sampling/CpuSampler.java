package io.kvass.worker.sampling;

import java.util.List;
import java.util.Objects;

/**
 * vLLM v1's {@code Sampler.forward} for one row on the CPU: raw logprobs, logits processors,
 * then greedy argmax or {@link TopKTopPSampler}.
 *
 * <p>Not thread-safe (vocab-sized scratch); sequences are independent, so several samplers may
 * work through one batch in parallel.
 */
public final class CpuSampler implements Sampler {
  private final List<LogitsProcessor> processors;
  private final TopKTopPSampler random = new TopKTopPSampler();
  private float[] work = new float[0]; // [vocabSize] penalized copy of the row

  /** vLLM's default processors: min_tokens masking, penalties, then the structured-output grammar. */
  public CpuSampler() {
    this(List.of(LogitsProcessor.MIN_TOKENS, LogitsProcessor.PENALTIES, LogitsProcessor.GRAMMAR));
  }

  /** @param processors applied in order to a copy of each row before the token is chosen */
  public CpuSampler(List<LogitsProcessor> processors) {
    this.processors = List.copyOf(processors);
  }

  @Override
  public SampledToken sample(
      float[] logits, int offset, int vocabSize, SequenceSamplingState state) {
    Objects.checkFromIndexSize(offset, vocabSize, logits.length);
    if (vocabSize == 0) {
      throw new IllegalArgumentException("empty logits row");
    }
    SamplingParams params = state.params();
    // A copy, so the caller's row stays the raw model output that logprobs are defined on.
    float[] x = rowCopy(logits, offset, vocabSize);
    for (LogitsProcessor processor : processors) {
      processor.apply(x, state);
    }
    int token = params.isGreedy() ? argmax(x) : random.sample(x, params, state.uniform());
    SampledToken result = params.logprobs().isPresent()
        ? Logprobs.of(logits, offset, vocabSize, token, params.logprobs().getAsInt())
        : SampledToken.withoutLogprobs(token);
    state.append(token);
    return result;
  }

  /** The most likely token; ties go to the lowest id (first index), NaNs are ignored. */
  static int argmax(float[] logits) {
    int best = -1;
    float bestLogit = Float.NEGATIVE_INFINITY;
    for (int id = 0; id < logits.length; id++) {
      if (logits[id] > bestLogit) {
        bestLogit = logits[id];
        best = id;
      }
    }
    if (best < 0) {
      throw new IllegalStateException("every logit is -inf or NaN; nothing can be sampled");
    }
    return best;
  }

  private float[] rowCopy(float[] logits, int offset, int vocabSize) {
    if (work.length != vocabSize) {
      work = new float[vocabSize];
    }
    System.arraycopy(logits, offset, work, 0, vocabSize);
    return work;
  }
}
