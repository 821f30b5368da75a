package io.kvass.worker.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Set;
import org.junit.jupiter.api.Test;

class PenaltiesTest {
  private static final int[] PROMPT = {0, 1, 1};
  private static final int[] OUTPUT = {2, 2, 3, 0};

  private static SequenceSamplingState stateWith(SamplingParams params) {
    return SequenceSamplingState.resume(params, PROMPT, TestLogits.NO_EOS, 0L, OUTPUT);
  }

  @Test
  void repetitionFrequencyAndPresenceFollowVllmFormulas() {
    SamplingParams p = SamplingParams.builder()
        .repetitionPenalty(2f).frequencyPenalty(0.5f).presencePenalty(0.25f).build();
    float[] logits = {2f, -1f, 0.5f, 3f, 0f, 4f};
    Penalties.apply(logits, stateWith(p));
    // token 0: prompt and output (once): 2/2 = 1, - 0.5*1 = 0.5, - 0.25 = 0.25
    // token 1: prompt only, negative: -1*2 = -2, no frequency/presence
    // token 2: output x2: 0.5/2 = 0.25, - 0.5*2 = -0.75, - 0.25 = -1.0
    // token 3: output x1: 3/2 = 1.5, - 0.5 = 1.0, - 0.25 = 0.75
    // token 4: zero logit, unseen: untouched; token 5 unseen: untouched
    assertArrayEquals(new float[] {0.25f, -2f, -1.0f, 0.75f, 0f, 4f}, logits);
  }

  @Test
  void repetitionPenaltyBelowOneRewardsSeenTokens() {
    float[] logits = {2f, -1f, 0f, 3f};
    Penalties.applyRepetition(
        logits, TokenSet.of(PROMPT), stateWith(SamplingParams.defaults()).outputCounts(), 0.5f);
    assertArrayEquals(new float[] {4f, -0.5f, 0f, 6f}, logits);
  }

  @Test
  void frequencyPenaltyScalesWithCountAndNegativeValuesBoost() {
    float[] logits = {1f, 1f, 1f, 1f};
    Penalties.applyFrequencyAndPresence(
        logits, stateWith(SamplingParams.defaults()).outputCounts(), -1f, 0f);
    assertArrayEquals(new float[] {2f, 1f, 3f, 2f}, logits);
  }

  @Test
  void defaultsLeaveLogitsAlone() {
    float[] logits = {2f, -1f, 0.5f, 3f};
    Penalties.apply(logits, stateWith(SamplingParams.defaults()));
    assertArrayEquals(new float[] {2f, -1f, 0.5f, 3f}, logits);
  }

  @Test
  void tokensOutsideTheRowAreIgnored() {
    SamplingParams p = SamplingParams.builder().repetitionPenalty(2f).presencePenalty(1f).build();
    SequenceSamplingState s =
        SequenceSamplingState.resume(p, new int[] {7}, TestLogits.NO_EOS, 0L, new int[] {9, 1});
    float[] logits = {1f, 1f};
    Penalties.apply(logits, s);
    assertArrayEquals(new float[] {1f, -0.5f}, logits);
  }

  @Test
  void penaltiesSteerGreedyDecoding() {
    float[] logits = {0f, 5f, 4.5f};
    SamplingParams p = SamplingParams.greedy(16).toBuilder().presencePenalty(1f).build();
    SequenceSamplingState s = TestLogits.state(p);
    Sampler sampler = Sampler.cpu();
    assertEquals(1, sampler.sample(logits, s).tokenId());
    assertEquals(2, sampler.sample(logits, s).tokenId()); // 5 - 1 < 4.5
    assertArrayEquals(new float[] {0f, 5f, 4.5f}, logits, "caller's row must stay raw");
  }

  @Test
  void minTokensMasksEosAndStopTokenIdsUntilReached() {
    float[] logits = {9f, 8f, 7f, 1f};
    SamplingParams p = SamplingParams.greedy(10).toBuilder()
        .minTokens(3).stopTokenIds(Set.of(1)).ignoreEos(true).build();
    SequenceSamplingState s = SequenceSamplingState.create(p, TestLogits.NO_PROMPT, new int[] {0});
    Sampler sampler = Sampler.cpu();
    assertEquals(2, sampler.sample(logits, s).tokenId());
    assertEquals(2, sampler.sample(logits, s).tokenId());
    assertEquals(2, sampler.sample(logits, s).tokenId());
    assertEquals(0, sampler.sample(logits, s).tokenId());
    assertEquals("[0, 1]", s.minTokensStopIds().toString());
  }
}
