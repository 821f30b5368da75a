package io.kvass.worker.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class DataStructuresTest {

  @Test
  void outputTokenCountsMatchAHashMap() {
    Random r = new Random(1);
    OutputTokenCounts counts = new OutputTokenCounts();
    Map<Integer, Integer> oracle = new HashMap<>();
    for (int i = 0; i < 20_000; i++) {
      int token = r.nextInt(3) == 0 ? r.nextInt(128_000) : r.nextInt(64) * 1024;
      counts.add(token);
      oracle.merge(token, 1, Integer::sum);
    }
    assertEquals(20_000, counts.total());
    assertEquals(oracle.size(), counts.distinct());
    for (int i = 0; i < counts.distinct(); i++) {
      assertEquals(oracle.get(counts.tokenAt(i)), counts.countAt(i));
    }
    oracle.forEach((token, n) -> assertEquals(n, counts.count(token)));
    assertEquals(0, counts.count(5));
    assertEquals(0, counts.count(-1));
  }

  @Test
  void tokenSetIsSortedAndDistinct() {
    TokenSet s = TokenSet.of(5, 1, 5, 3, 1);
    assertEquals(3, s.size());
    assertEquals(1, s.get(0));
    assertEquals(5, s.get(2));
    assertTrue(s.contains(3));
    assertFalse(s.contains(4));
    assertEquals(0, TokenSet.of().size());
  }

  @Test
  void rankKeysOrderByLogitDescendingThenIdAscending() {
    float[] logits = {-0f, 0f, -1e-30f, Float.NEGATIVE_INFINITY, 3f, -2f, 3f, Float.MAX_VALUE};
    long[] keys = new long[logits.length];
    for (int i = 0; i < logits.length; i++) {
      keys[i] = RankKeys.key(logits[i], i);
    }
    Arrays.sort(keys);
    int[] ids = Arrays.stream(keys).mapToInt(RankKeys::tokenId).toArray();
    assertArrayEquals(new int[] {7, 4, 6, 0, 1, 2, 5, 3}, ids);
  }

  @Test
  void selectSmallestEqualsSortedPrefix() {
    Random r = new Random(2);
    for (int trial = 0; trial < 200; trial++) {
      int n = 1 + r.nextInt(500);
      int k = 1 + r.nextInt(n + 5);
      long[] keys = new long[n];
      for (int i = 0; i < n; i++) {
        keys[i] = RankKeys.key((float) r.nextInt(50), i); // many ties
      }
      long[] expected = keys.clone();
      Arrays.sort(expected);
      RankKeys.selectSmallest(keys, n, k);
      int m = Math.min(k, n);
      assertArrayEquals(Arrays.copyOf(expected, m), Arrays.copyOf(keys, m));
    }
  }
}
