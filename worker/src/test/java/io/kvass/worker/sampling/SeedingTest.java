package io.kvass.worker.sampling;

import static io.kvass.worker.sampling.TestLogits.NO_EOS;
import static io.kvass.worker.sampling.TestLogits.NO_PROMPT;
import static io.kvass.worker.sampling.TestLogits.draw;
import static io.kvass.worker.sampling.TestLogits.state;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SeedingTest {
  private static final float[] FLAT = new float[50];

  private static SamplingParams seeded(long seed) {
    return SamplingParams.builder().seed(seed).maxTokens(200).build();
  }

  @Test
  void sameSeedSameTokensWhateverIsSampledInBetween() {
    List<Integer> alone = draw(Sampler.cpu(), FLAT, state(seeded(42)), 100);

    Sampler shared = Sampler.cpu();
    SequenceSamplingState again = state(seeded(42));
    SequenceSamplingState other = state(seeded(7));
    SequenceSamplingState unseeded = state(SamplingParams.builder().topK(5).build());
    List<Integer> interleaved = new ArrayList<>();
    for (int i = 0; i < 100; i++) {
      // A varying amount of other work between our draws, on the same sampler.
      for (int j = 0; j < i % 3; j++) {
        shared.sample(FLAT, other);
        shared.sample(FLAT, unseeded);
      }
      interleaved.add(shared.sample(FLAT, again).tokenId());
    }
    assertEquals(alone, interleaved);
  }

  @Test
  void batchOrderDoesNotMatter() {
    float[] batch = new float[2 * FLAT.length];
    SequenceSamplingState a1 = state(seeded(1));
    SequenceSamplingState b1 = state(seeded(2));
    SequenceSamplingState a2 = state(seeded(1));
    SequenceSamplingState b2 = state(seeded(2));
    Sampler sampler = Sampler.cpu();
    for (int step = 0; step < 50; step++) {
      List<SampledToken> forward = sampler.sampleBatch(batch, FLAT.length, List.of(a1, b1));
      List<SampledToken> reverse = sampler.sampleBatch(batch, FLAT.length, List.of(b2, a2));
      assertEquals(forward.get(0), reverse.get(1));
      assertEquals(forward.get(1), reverse.get(0));
    }
  }

  @Test
  void differentSeedsGiveDifferentSequences() {
    assertNotEquals(
        draw(Sampler.cpu(), FLAT, state(seeded(1)), 100),
        draw(Sampler.cpu(), FLAT, state(seeded(2)), 100));
    SamplingParams unseeded = SamplingParams.defaults();
    assertNotEquals(
        draw(Sampler.cpu(), FLAT, state(unseeded), 100),
        draw(Sampler.cpu(), FLAT, state(unseeded), 100));
  }

  @Test
  void childrenOfASeededRequestDifferButAreReproducible() {
    SamplingParams parent = SamplingParams.builder().n(3).seed(99).build();
    List<SequenceSamplingState> first = SequenceSamplingState.forRequest(parent, NO_PROMPT, NO_EOS);
    List<SequenceSamplingState> second =
        SequenceSamplingState.forRequest(parent, NO_PROMPT, NO_EOS);
    List<List<Integer>> a = new ArrayList<>();
    List<List<Integer>> b = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      a.add(draw(Sampler.cpu(), FLAT, first.get(i), 40));
      b.add(draw(Sampler.cpu(), FLAT, second.get(i), 40));
      assertEquals(99 + i, first.get(i).seed());
    }
    assertEquals(a, b);
    assertNotEquals(a.get(0), a.get(1));
    assertNotEquals(a.get(1), a.get(2));
    assertThrows(IllegalArgumentException.class,
        () -> SequenceSamplingState.create(parent, NO_PROMPT, NO_EOS));
  }

  @Test
  void resumeContinuesExactlyWhereTheOriginalWouldHave() {
    // Penalties make the continuation depend on the replayed counts, not just the RNG.
    SamplingParams p = SamplingParams.builder().temperature(0.8f).frequencyPenalty(1.5f)
        .repetitionPenalty(1.3f).topP(0.95f).maxTokens(100).build(); // unseeded on purpose
    float[] logits = new float[20];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) Math.sin(i);
    }
    int[] prompt = {3, 4, 5};
    SequenceSamplingState original = SequenceSamplingState.create(p, prompt, NO_EOS);
    List<Integer> all = draw(Sampler.cpu(), logits, original, 30);

    int[] firstTen = all.subList(0, 10).stream().mapToInt(Integer::intValue).toArray();
    SequenceSamplingState resumed =
        SequenceSamplingState.resume(p, prompt, NO_EOS, original.seed(), firstTen);
    assertEquals(10, resumed.outputLength());
    assertEquals(all.subList(10, 30), draw(Sampler.cpu(), logits, resumed, 20));
  }

  @Test
  void greedyStepsAdvanceTheRngToo() {
    // NOTE: what makes resume() valid is one draw per token, greedy or not.
    SequenceSamplingState greedy = state(SamplingParams.greedy(8).withSeed(5));
    SequenceSamplingState random = state(seeded(5));
    Sampler sampler = Sampler.cpu();
    sampler.sample(FLAT, greedy);
    sampler.sample(FLAT, random);
    assertEquals(random.uniform(), greedy.uniform());
  }
}
