package io.kvass.worker.sampling;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Log-softmax of a raw logits row: the sampled token's logprob and the top-N list. */
final class Logprobs {
  private Logprobs() {}

  /**
   * @param row logits[offset, offset + vocabSize) as the model produced them
   * @param topN how many most likely tokens to list (0..20)
   */
  static SampledToken of(float[] row, int offset, int vocabSize, int sampled, int topN) {
    double logSumExp = logSumExp(row, offset, vocabSize);
    float sampledLogprob = (float) (row[offset + sampled] - logSumExp);
    long[] top = topKeys(row, offset, vocabSize, topN);
    List<TokenLogprob> list = new ArrayList<>(top.length);
    for (long key : top) {
      int id = RankKeys.tokenId(key);
      list.add(new TokenLogprob(id, (float) (row[offset + id] - logSumExp)));
    }
    return new SampledToken(sampled, sampledLogprob, list);
  }

  // Max-shifted in double: exact enough for logprobs of 128k-token rows, never overflows.
  static double logSumExp(float[] row, int offset, int vocabSize) {
    float max = Float.NEGATIVE_INFINITY;
    for (int i = offset; i < offset + vocabSize; i++) {
      max = Math.max(max, row[i]);
    }
    if (max == Float.NEGATIVE_INFINITY || Float.isNaN(max)) {
      return max;
    }
    double sum = 0;
    for (int i = offset; i < offset + vocabSize; i++) {
      sum += Math.exp((double) row[i] - max);
    }
    return max + Math.log(sum);
  }

  /**
   * The n best rank keys, best first. A bounded insertion list: n <= 20, and after the first
   * few hundred tokens almost every candidate fails the single compare against the worst kept.
   */
  private static long[] topKeys(float[] row, int offset, int vocabSize, int n) {
    int size = Math.min(n, vocabSize);
    long[] best = new long[size];
    int filled = 0;
    for (int id = 0; id < vocabSize && size > 0; id++) {
      float logit = row[offset + id];
      if (Float.isNaN(logit)) {
        continue;
      }
      long key = RankKeys.key(logit, id);
      if (filled == size && key >= best[size - 1]) {
        continue;
      }
      int pos = filled == size ? size - 1 : filled++;
      while (pos > 0 && best[pos - 1] > key) {
        best[pos] = best[pos - 1];
        pos--;
      }
      best[pos] = key;
    }
    return filled == size ? best : Arrays.copyOf(best, filled);
  }
}
