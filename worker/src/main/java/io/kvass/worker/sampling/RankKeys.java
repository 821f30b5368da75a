package io.kvass.worker.sampling;

import java.util.Arrays;

/**
 * A (logit, token id) pair packed into one {@code long} whose natural ascending order is
 * "most likely first, lower id first on ties", so ranking a vocabulary is a primitive
 * {@code Arrays.sort} or heap over {@code long[]}: no boxing, no comparator, deterministic ties.
 *
 * <p>Layout: high 32 bits = the float's order-preserving bits, inverted (descending);
 * low 32 bits = the token id (non-negative, so ascending).
 */
final class RankKeys {
  private RankKeys() {}

  static long key(float logit, int tokenId) {
    return ((long) ~orderedBits(logit) << 32) | tokenId;
  }

  static int tokenId(long key) {
    return (int) key;
  }

  /** Signed-int image of a non-NaN float that sorts like the float. */
  private static int orderedBits(float f) {
    int bits = Float.floatToRawIntBits(f + 0f); // + 0f folds -0.0 into +0.0 so they tie
    return bits ^ ((bits >> 31) & 0x7fffffff);
  }

  /**
   * Rearranges {@code keys[0, n)} so that {@code keys[0, k)} hold the k smallest keys (the k
   * most likely tokens), sorted ascending. O(n log k) with a bounded max-heap, so top_k = 50
   * over a 128k vocabulary never sorts the vocabulary.
   */
  static void selectSmallest(long[] keys, int n, int k) {
    if (k <= 0) {
      return;
    }
    if (k >= n) {
      Arrays.sort(keys, 0, n);
      return;
    }
    for (int i = k / 2 - 1; i >= 0; i--) {
      siftDown(keys, i, k);
    }
    for (int i = k; i < n; i++) {
      if (keys[i] < keys[0]) {
        keys[0] = keys[i];
        siftDown(keys, 0, k);
      }
    }
    Arrays.sort(keys, 0, k);
  }

  /** Max-heap sift-down within {@code heap[0, size)}. */
  private static void siftDown(long[] heap, int i, int size) {
    long v = heap[i];
    while (true) {
      int child = 2 * i + 1;
      if (child >= size) {
        break;
      }
      if (child + 1 < size && heap[child + 1] > heap[child]) {
        child++;
      }
      if (heap[child] <= v) {
        break;
      }
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = v;
  }
}
