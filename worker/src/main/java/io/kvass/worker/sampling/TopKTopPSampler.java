package io.kvass.worker.sampling;

import java.util.Arrays;

/**
 * The random half of sampling, vLLM's order: temperature -> min_p -> top_k -> top_p -> softmax
 * -> draw. Works on a candidate list rather than masking the whole row with -inf, so top_k
 * costs O(V log k), top_p sorts only what survived, and plain temperature sampling sorts nothing.
 *
 * <p>Holds vocab-sized scratch reused across calls: one instance per sampling thread.
 */
final class TopKTopPSampler {
  private long[] keys = new long[0]; // rank keys of the candidates, see RankKeys
  private double[] weights = new double[0]; // unnormalized probabilities, parallel to keys
  private int size;
  private boolean ranked; // keys[0, size) are sorted most likely first

  /**
   * Draws one token from {@code logits} (already penalized) with the non-greedy parameters.
   *
   * @param uniform the sequence's uniform in [0, 1) for this token
   */
  int sample(float[] logits, SamplingParams params, double uniform) {
    float temperature = params.temperature();
    float max = maxLogit(logits);
    collect(logits, minPCutoff(max, params.minP(), temperature));
    if (params.topKEnabled()) {
      keepTopK(params.topK());
    }
    if (params.topP() < 1f) {
      rank();
    }
    double total = weigh(logits, max, temperature);
    if (params.topP() < 1f) {
      total = keepTopP(params.topP(), total);
    }
    return draw(uniform * total);
  }

  /**
   * vLLM keeps {@code softmax(l / T) >= minP * max softmax(l / T)}; in logit space that is
   * {@code l >= max + T * ln(minP)}, which needs no softmax over the vocabulary.
   */
  static double minPCutoff(float max, float minP, float temperature) {
    return minP > 0f ? max + temperature * Math.log(minP) : Double.NEGATIVE_INFINITY;
  }

  static float maxLogit(float[] logits) {
    float max = Float.NEGATIVE_INFINITY;
    for (float l : logits) {
      if (l > max) {
        max = l;
      }
    }
    if (max == Float.NEGATIVE_INFINITY) {
      throw new IllegalStateException("every logit is -inf or NaN; nothing can be sampled");
    }
    return max;
  }

  private void collect(float[] logits, double cutoff) {
    if (keys.length < logits.length) {
      keys = new long[logits.length];
      weights = new double[logits.length];
    }
    int n = 0;
    for (int id = 0; id < logits.length; id++) {
      float l = logits[id];
      // NaN fails both tests; -inf marks tokens a logits processor has banned.
      if (l >= cutoff && l > Float.NEGATIVE_INFINITY) {
        keys[n++] = RankKeys.key(l, id);
      }
    }
    size = n;
    ranked = false;
  }

  /**
   * NOTE: exactly k tokens, ties at the k-th logit broken towards the lower id. vLLM's torch
   * path keeps every token tied with the k-th; strict k makes top_k=1 identical to greedy and
   * the support independent of float ties.
   */
  private void keepTopK(int k) {
    if (k < size) {
      RankKeys.selectSmallest(keys, size, k);
      size = k;
      ranked = true;
    }
  }

  private void rank() {
    if (!ranked) {
      Arrays.sort(keys, 0, size);
      ranked = true;
    }
  }

  /** Fills {@code weights} with exp((l - max) / T) and returns their sum. */
  private double weigh(float[] logits, float max, float temperature) {
    double total = 0;
    for (int i = 0; i < size; i++) {
      float l = logits[RankKeys.tokenId(keys[i])];
      // l == max also covers max == +inf, where (l - max) would be NaN.
      double w = l == max ? 1.0 : Math.exp(((double) l - max) / temperature);
      weights[i] = w;
      total += w;
    }
    return total;
  }

  /**
   * vLLM's rule: drop a token when the ascending cumulative mass up to it is <= 1 - p, i.e. keep
   * it while the mass of strictly more likely tokens is < p. That is the smallest most-likely
   * prefix whose mass reaches p, and never empty. Mass is relative to the survivors of min_p
   * and top_k, as vLLM renormalizes after masking.
   */
  private double keepTopP(float topP, double total) {
    double threshold = topP * total;
    double kept = 0;
    int n = 0;
    while (n < size && kept < threshold) {
      kept += weights[n++];
    }
    size = n;
    return kept;
  }

  /** Inverse CDF: the first candidate whose cumulative weight exceeds {@code target}. */
  private int draw(double target) {
    double cumulative = 0;
    for (int i = 0; i < size; i++) {
      cumulative += weights[i];
      if (target < cumulative) {
        return RankKeys.tokenId(keys[i]);
      }
    }
    // Rounding can leave target == total; the last candidate with weight is the right answer.
    for (int i = size - 1; i > 0; i--) {
      if (weights[i] > 0) {
        return RankKeys.tokenId(keys[i]);
      }
    }
    return RankKeys.tokenId(keys[0]);
  }
}
