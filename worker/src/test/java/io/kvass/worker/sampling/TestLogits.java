package io.kvass.worker.sampling;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/** Helpers shared by the sampling tests. */
final class TestLogits {
  private TestLogits() {}

  static final int[] NO_PROMPT = {};
  static final int[] NO_EOS = {};

  /** Logits whose softmax is exactly {@code probs} (up to float rounding). */
  static float[] fromProbs(double... probs) {
    float[] logits = new float[probs.length];
    for (int i = 0; i < probs.length; i++) {
      logits[i] = (float) Math.log(probs[i]);
    }
    return logits;
  }

  static SequenceSamplingState state(SamplingParams params) {
    return SequenceSamplingState.create(params, NO_PROMPT, NO_EOS);
  }

  /** Token frequencies over {@code draws} samples of one state. */
  static double[] frequencies(float[] logits, SamplingParams params, int draws) {
    Sampler sampler = Sampler.cpu();
    SequenceSamplingState state = state(params);
    double[] freq = new double[logits.length];
    for (int i = 0; i < draws; i++) {
      freq[sampler.sample(logits, state).tokenId()]++;
    }
    for (int i = 0; i < freq.length; i++) {
      freq[i] /= draws;
    }
    return freq;
  }

  /** The set of tokens ever drawn in {@code draws} samples. */
  static Set<Integer> support(float[] logits, SamplingParams params, int draws) {
    Sampler sampler = Sampler.cpu();
    SequenceSamplingState state = state(params);
    Set<Integer> seen = new TreeSet<>();
    for (int i = 0; i < draws; i++) {
      seen.add(sampler.sample(logits, state).tokenId());
    }
    return seen;
  }

  static List<Integer> draw(Sampler sampler, float[] logits, SequenceSamplingState state, int n) {
    Integer[] tokens = new Integer[n];
    for (int i = 0; i < n; i++) {
      tokens[i] = sampler.sample(logits, state).tokenId();
    }
    return List.of(tokens);
  }

  /** log_softmax in double, the oracle for logprobs. */
  static double[] logSoftmax(float[] logits) {
    double max = Double.NEGATIVE_INFINITY;
    for (float l : logits) {
      max = Math.max(max, l);
    }
    double sum = 0;
    for (float l : logits) {
      sum += Math.exp(l - max);
    }
    double lse = max + Math.log(sum);
    double[] out = new double[logits.length];
    for (int i = 0; i < logits.length; i++) {
      out[i] = logits[i] - lse;
    }
    return out;
  }
}
