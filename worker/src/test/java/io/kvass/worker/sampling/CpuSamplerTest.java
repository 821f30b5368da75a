package io.kvass.worker.sampling;

import static io.kvass.worker.sampling.TestLogits.frequencies;
import static io.kvass.worker.sampling.TestLogits.fromProbs;
import static io.kvass.worker.sampling.TestLogits.state;
import static io.kvass.worker.sampling.TestLogits.support;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class CpuSamplerTest {
  private final Sampler sampler = Sampler.cpu();

  private static SamplingParams.Builder seeded() {
    return SamplingParams.builder().seed(1234);
  }

  @Test
  void greedyIsArgmaxWithTiesToLowestId() {
    float[] logits = {1f, 3f, -2f, 3f, 2.9f};
    assertEquals(1, sampler.sample(logits, state(SamplingParams.greedy(4))).tokenId());
    SamplingParams almostZero = SamplingParams.builder().temperature(1e-6f).build();
    assertEquals(1, sampler.sample(logits, state(almostZero)).tokenId());
    assertEquals(2, sampler.sample(new float[] {Float.NaN, 0f, 1f}, state(almostZero)).tokenId());
  }

  @Test
  void temperatureSamplingMatchesSoftmaxFrequencies() {
    float[] logits = {1.0f, 0.5f, 0f, -0.5f, 2.0f};
    float temperature = 0.7f;
    int draws = 200_000;
    double[] observed =
        frequencies(logits, seeded().temperature(temperature).build(), draws);
    double[] expected = new double[logits.length];
    double sum = 0;
    for (int i = 0; i < logits.length; i++) {
      expected[i] = Math.exp(logits[i] / temperature);
      sum += expected[i];
    }
    double chiSquare = 0;
    for (int i = 0; i < logits.length; i++) {
      expected[i] /= sum;
      double sigma = Math.sqrt(expected[i] * (1 - expected[i]) / draws);
      assertEquals(expected[i], observed[i], 5 * sigma, "token " + i);
      chiSquare += draws * Math.pow(observed[i] - expected[i], 2) / expected[i];
    }
    // 4 degrees of freedom: P(chi2 > 18.47) = 0.001.
    assertTrue(chiSquare < 18.47, "chi-square " + chiSquare);
  }

  @Test
  void topKOneIsGreedy() {
    Random r = new Random(5);
    for (int trial = 0; trial < 50; trial++) {
      float[] logits = new float[1000];
      for (int i = 0; i < logits.length; i++) {
        logits[i] = (float) r.nextGaussian();
      }
      if (trial % 2 == 0) {
        logits[700] = logits[300] = 10f; // a tie for the top: both must pick 300
      }
      SamplingParams topK1 = SamplingParams.builder().seed(trial).topK(1).temperature(1.5f).build();
      int expected = sampler.sample(logits, state(SamplingParams.greedy(1))).tokenId();
      assertEquals(expected, sampler.sample(logits, state(topK1)).tokenId());
    }
  }

  @Test
  void topKKeepsExactlyTheKMostLikely() {
    float[] logits = {0f, 3f, 1f, 2f, 2f, -1f};
    assertEquals(Set.of(1, 3, 4), support(logits, seeded().topK(3).build(), 5_000));
    // Tie at the boundary goes to the lower id.
    assertEquals(Set.of(1, 3), support(logits, seeded().topK(2).build(), 5_000));
    assertEquals(Set.of(0, 1, 2, 3, 4, 5), support(logits, seeded().topK(-1).build(), 20_000));
  }

  @Test
  void topPKeepsTheMinimalSetReachingP() {
    // Ranked: 1 (0.5), 3 (0.25), 2 (0.15), 0 (0.10).
    float[] logits = fromProbs(0.10, 0.50, 0.15, 0.25);
    assertEquals(Set.of(1), support(logits, seeded().topP(0.45f).build(), 5_000));
    assertEquals(Set.of(1, 3), support(logits, seeded().topP(0.7f).build(), 5_000));
    assertEquals(Set.of(1, 2, 3), support(logits, seeded().topP(0.8f).build(), 5_000));
    assertEquals(Set.of(0, 1, 2, 3), support(logits, seeded().topP(0.95f).build(), 5_000));
  }

  @Test
  void topPRenormalizesTheKeptSet() {
    float[] logits = fromProbs(0.10, 0.50, 0.15, 0.25);
    double[] f = frequencies(logits, seeded().topP(0.7f).build(), 60_000);
    assertEquals(2.0 / 3, f[1], 0.01);
    assertEquals(1.0 / 3, f[3], 0.01);
  }

  @Test
  void topPIsMeasuredAfterTopK() {
    // Among the top 3 the masses are 0.556, 0.278, 0.167: p = 0.8 is reached by two tokens,
    // while over the full distribution it needs three.
    float[] logits = fromProbs(0.10, 0.50, 0.15, 0.25);
    assertEquals(Set.of(1, 3), support(logits, seeded().topK(3).topP(0.8f).build(), 5_000));
  }

  @Test
  void minPDropsTokensBelowMinPTimesMaxProbability() {
    float[] logits = fromProbs(0.5, 0.3, 0.1, 0.06, 0.04);
    // threshold 0.15 * 0.5 = 0.075
    assertEquals(Set.of(0, 1, 2), support(logits, seeded().minP(0.15f).build(), 5_000));
    assertEquals(Set.of(0), support(logits, seeded().minP(1f).build(), 1_000));
  }

  @Test
  void minPIsAppliedToTemperedProbabilities() {
    float[] logits = fromProbs(0.5, 0.3, 0.1, 0.06, 0.04);
    // At T = 1 token 2 has 0.2 of the max; at T = 0.5 it has 0.2^2 = 0.04 < 0.05.
    assertEquals(Set.of(0, 1, 2, 3, 4), support(logits, seeded().minP(0.05f).build(), 20_000));
    assertEquals(
        Set.of(0, 1), support(logits, seeded().minP(0.05f).temperature(0.5f).build(), 20_000));
  }

  @Test
  void logprobsAreLogSoftmaxOfTheRawLogits() {
    Random r = new Random(11);
    float[] logits = new float[1000];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) (3 * r.nextGaussian());
    }
    double[] oracle = TestLogits.logSoftmax(logits);
    // Penalties and temperature change what is sampled but not the reported logprobs.
    SamplingParams p = seeded().logprobs(5).temperature(0.5f).presencePenalty(2f)
        .repetitionPenalty(1.5f).build();
    SequenceSamplingState s = SequenceSamplingState.create(p, new int[] {1, 2, 3}, new int[] {0});
    for (int step = 0; step < 20; step++) {
      SampledToken t = sampler.sample(logits, s);
      assertEquals(oracle[t.tokenId()], t.logprob(), 1e-5);
      Integer[] byLogprob = new Integer[logits.length];
      Arrays.setAll(byLogprob, i -> i);
      Arrays.sort(byLogprob, (a, b) -> Double.compare(oracle[b], oracle[a]));
      assertEquals(5, t.topLogprobs().size());
      for (int k = 0; k < 5; k++) {
        TokenLogprob tl = t.topLogprobs().get(k);
        assertEquals((int) byLogprob[k], tl.tokenId());
        assertEquals(oracle[tl.tokenId()], tl.logprob(), 1e-5);
      }
    }
  }

  @Test
  void topLogprobsAreSortedWithTiesToLowerId() {
    float[] logits = {2f, 5f, 5f, 1f};
    SampledToken t = sampler.sample(logits, state(SamplingParams.greedy(1).withLogprobs(3)));
    List<Integer> ids = t.topLogprobs().stream().map(TokenLogprob::tokenId).toList();
    assertEquals(List.of(1, 2, 0), ids);
    assertEquals(t.topLogprobs().get(0).logprob(), t.topLogprobs().get(1).logprob());
    assertTrue(t.topLogprobs().get(1).logprob() > t.topLogprobs().get(2).logprob());
  }

  @Test
  void logprobsZeroReturnsOnlyTheSampledTokensLogprob() {
    float[] logits = {0f, 0f};
    SampledToken t = sampler.sample(logits, state(SamplingParams.greedy(1).withLogprobs(0)));
    assertEquals(Math.log(0.5), t.logprob(), 1e-6);
    assertTrue(t.topLogprobs().isEmpty());
    SampledToken none = sampler.sample(logits, state(SamplingParams.greedy(1)));
    assertFalse(none.hasLogprob());
    assertTrue(none.topLogprobs().isEmpty());
  }

  @Test
  void bannedTokensAreNeverSampledAndAllBannedFails() {
    float[] logits = {Float.NEGATIVE_INFINITY, 0f, Float.NaN, 0f};
    assertEquals(Set.of(1, 3), support(logits, seeded().build(), 2_000));
    float[] none = {Float.NEGATIVE_INFINITY, Float.NaN};
    assertThrows(IllegalStateException.class, () -> sampler.sample(none, state(seeded().build())));
    assertThrows(
        IllegalStateException.class, () -> sampler.sample(none, state(SamplingParams.greedy(1))));
  }

  @Test
  void largeVocabularyTopKTopPStaysInTheTopK() {
    Random r = new Random(3);
    float[] logits = new float[128_256];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) (2 * r.nextGaussian());
    }
    float[] sorted = logits.clone();
    Arrays.sort(sorted);
    float fortiethBest = sorted[sorted.length - 40];
    SequenceSamplingState s =
        state(SamplingParams.builder().seed(9).topK(40).topP(0.9f).temperature(0.8f).build());
    for (int step = 0; step < 200; step++) {
      assertTrue(logits[sampler.sample(logits, s).tokenId()] >= fortiethBest);
    }
  }

  @Test
  void rowsOfABatchAreSampledAtTheirOffsets() {
    float[] batch = {0f, 9f, 0f, /* row 1 */ 7f, 0f, 0f};
    SequenceSamplingState a = state(SamplingParams.greedy(4));
    SequenceSamplingState b = state(SamplingParams.greedy(4));
    List<SampledToken> tokens = sampler.sampleBatch(batch, 3, List.of(a, b));
    assertEquals(1, tokens.get(0).tokenId());
    assertEquals(0, tokens.get(1).tokenId());
    assertArrayEquals(new float[] {0f, 9f, 0f, 7f, 0f, 0f}, batch);
    assertEquals(1, a.outputCounts().count(1));
    assertEquals(1, b.outputLength());
  }
}
