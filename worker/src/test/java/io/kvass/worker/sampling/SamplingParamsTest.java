package io.kvass.worker.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SamplingParamsTest {

  static Stream<Arguments> invalid() {
    return Stream.of(
        bad("n", b -> b.n(0)),
        bad("temperature", b -> b.temperature(-0.1f)),
        bad("temperature", b -> b.temperature(2.5f)),
        bad("temperature", b -> b.temperature(Float.NaN)),
        bad("top_p", b -> b.topP(0f)),
        bad("top_p", b -> b.topP(1.01f)),
        bad("top_p", b -> b.topP(Float.NaN)),
        bad("top_k", b -> b.topK(-2)),
        bad("min_p", b -> b.minP(-0.01f)),
        bad("min_p", b -> b.minP(1.5f)),
        bad("presence_penalty", b -> b.presencePenalty(2.01f)),
        bad("presence_penalty", b -> b.presencePenalty(-2.01f)),
        bad("frequency_penalty", b -> b.frequencyPenalty(-3f)),
        bad("frequency_penalty", b -> b.frequencyPenalty(Float.NaN)),
        bad("repetition_penalty", b -> b.repetitionPenalty(0f)),
        bad("repetition_penalty", b -> b.repetitionPenalty(-1f)),
        bad("repetition_penalty", b -> b.repetitionPenalty(Float.POSITIVE_INFINITY)),
        bad("max_tokens", b -> b.maxTokens(0)),
        bad("min_tokens", b -> b.minTokens(-1)),
        bad("min_tokens", b -> b.maxTokens(5).minTokens(6)),
        bad("logprobs", b -> b.logprobs(21)),
        bad("logprobs", b -> b.logprobs(-1)),
        bad("stop", b -> b.stop(List.of("ok", ""))),
        bad("stop_token_ids", b -> b.stopTokenIds(Set.of(-5))));
  }

  private static Arguments bad(String field, UnaryOperator<SamplingParams.Builder> edit) {
    return Arguments.of(field, edit);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("invalid")
  void invalidParametersAreRejectedNamingTheField(
      String field, UnaryOperator<SamplingParams.Builder> edit) {
    IllegalArgumentException e = assertThrows(
        IllegalArgumentException.class, () -> edit.apply(SamplingParams.builder()).build());
    assertTrue(e.getMessage().startsWith(field + " "), e.getMessage());
  }

  @Test
  void boundaryValuesAreAccepted() {
    SamplingParams p = SamplingParams.builder()
        .temperature(2f).topP(1f).topK(-1).minP(1f).presencePenalty(-2f).frequencyPenalty(2f)
        .repetitionPenalty(0.01f).maxTokens(1).minTokens(1).logprobs(20).build();
    assertEquals(-1, p.topK());
    assertFalse(p.topKEnabled());
    SamplingParams.builder().logprobs(0).topK(0).topP(Float.MIN_VALUE).build();
  }

  @Test
  void defaultsMatchOpenAi() {
    SamplingParams p = SamplingParams.defaults();
    assertEquals(1, p.n());
    assertEquals(1f, p.temperature());
    assertEquals(1f, p.topP());
    assertEquals(16, p.maxTokens());
    assertTrue(p.skipSpecialTokens());
    assertTrue(p.seed().isEmpty());
    assertTrue(p.logprobs().isEmpty());
    assertFalse(p.isGreedy());
  }

  @Test
  void greedyMeansTemperatureBelowEpsilon() {
    assertTrue(SamplingParams.greedy(8).isGreedy());
    assertEquals(8, SamplingParams.greedy(8).maxTokens());
    assertTrue(SamplingParams.builder().temperature(1e-6f).build().isGreedy());
    assertFalse(SamplingParams.builder().temperature(1e-4f).build().isGreedy());
  }

  @Test
  void childrenGetSeedPlusIndexAndNOne() {
    SamplingParams parent = SamplingParams.builder().n(3).seed(100).build();
    assertEquals(OptionalLong.of(102), parent.forChild(2).seed());
    assertEquals(1, parent.forChild(2).n());
    assertTrue(SamplingParams.builder().n(2).build().forChild(1).seed().isEmpty());
    assertThrows(IndexOutOfBoundsException.class, () -> parent.forChild(3));
  }

  @Test
  void collectionsAreCopiedImmutably() {
    var stops = new java.util.ArrayList<>(List.of("a"));
    SamplingParams p = SamplingParams.builder().stop(stops).build();
    stops.add("b");
    assertEquals(List.of("a"), p.stop());
    assertThrows(UnsupportedOperationException.class, () -> p.stop().add("c"));
  }

  @Test
  void withMethodsChangeOneField() {
    SamplingParams p = SamplingParams.defaults().withSeed(7).withMaxTokens(99).withLogprobs(3);
    assertEquals(OptionalLong.of(7), p.seed());
    assertEquals(99, p.maxTokens());
    assertEquals(3, p.logprobs().getAsInt());
    assertEquals(p, p.toBuilder().build());
  }
}
