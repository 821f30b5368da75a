package io.kvass.worker.sampling;

import io.kvass.worker.grammar.GrammarMatcher;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Everything the sampler needs to remember about one sequence between steps: its parameters,
 * the prompt's distinct tokens, the output's token counts, and its own RNG.
 *
 * <p>NOTE: the RNG belongs to the sequence, never to the batch, and advances exactly once per
 * sampled token. That is what makes a seeded sequence reproducible whatever shares its batch
 * and in whatever order a step samples the batch, and what lets {@link #resume} rebuild the
 * state from the tokens generated so far (recompute after preemption or failover).
 *
 * <p>Single writer: the sampler that samples this sequence; not thread-safe.
 */
public final class SequenceSamplingState {
  private final SamplingParams params;
  private final TokenSet promptTokens;
  private final TokenSet minTokensStopIds;
  private final OutputTokenCounts outputCounts = new OutputTokenCounts();
  private final long seed;
  private final SplittableRandom rng;
  private double pendingUniform;
  private boolean hasPendingUniform;
  private Optional<GrammarMatcher> grammar = Optional.empty();

  private SequenceSamplingState(
      SamplingParams params, TokenSet promptTokens, TokenSet eosTokenIds, long seed) {
    this.params = params;
    this.promptTokens = promptTokens;
    // vLLM's all_stop_token_ids: EOS is masked under min_tokens even with ignore_eos.
    this.minTokensStopIds =
        eosTokenIds.union(TokenSet.of(params.stopTokenIds().stream().mapToInt(i -> i).toArray()));
    this.seed = seed;
    this.rng = new SplittableRandom(seed);
  }

  /**
   * State for a fresh sequence. {@code params.n()} must be 1; use {@link #forRequest} (or
   * {@link SamplingParams#forChild}) to fan out n > 1.
   *
   * @param eosTokenIds the model's EOS ids (tokenizer + generation config), masked by min_tokens
   */
  public static SequenceSamplingState create(
      SamplingParams params, int[] promptTokenIds, int[] eosTokenIds) {
    Objects.requireNonNull(params, "params");
    if (params.n() != 1) {
      throw new IllegalArgumentException(
          "a sequence samples one completion; split n=" + params.n() + " with forRequest");
    }
    long seed = params.seed().orElseGet(() -> ThreadLocalRandom.current().nextLong());
    return new SequenceSamplingState(
        params, TokenSet.of(promptTokenIds), TokenSet.of(eosTokenIds), seed);
  }

  /** One state per completion of a request, child {@code i} built from {@code forChild(i)}. */
  public static List<SequenceSamplingState> forRequest(
      SamplingParams params, int[] promptTokenIds, int[] eosTokenIds) {
    List<SequenceSamplingState> children = new ArrayList<>(params.n());
    for (int i = 0; i < params.n(); i++) {
      children.add(create(params.forChild(i), promptTokenIds, eosTokenIds));
    }
    return List.copyOf(children);
  }

  /**
   * The state a sequence would have after sampling {@code outputTokenIds}: counts replayed and
   * the RNG advanced once per token. With {@code seed} equal to the original {@link #seed()},
   * the continuation is the one the original state would have sampled.
   */
  public static SequenceSamplingState resume(
      SamplingParams params, int[] promptTokenIds, int[] eosTokenIds, long seed,
      int[] outputTokenIds) {
    Objects.requireNonNull(params, "params");
    if (params.n() != 1) {
      throw new IllegalArgumentException("a sequence samples one completion, got n=" + params.n());
    }
    SequenceSamplingState state = new SequenceSamplingState(
        params, TokenSet.of(promptTokenIds), TokenSet.of(eosTokenIds), seed);
    for (int token : outputTokenIds) {
      state.append(token);
    }
    return state;
  }

  /**
   * The same state with its output constrained by {@code matcher} (fresh, at the start of the language), the
   * tokens recorded so far replayed through it: a resumed sequence's grammar state is a function of its outputs.
   *
   * @throws IllegalStateException if those outputs break the grammar
   */
  public SequenceSamplingState withGrammar(GrammarMatcher matcher, int[] outputTokenIds) {
    if (outputTokenIds.length != outputCounts.total()) {
      throw new IllegalArgumentException(outputTokenIds.length + " outputs replayed into a state that recorded "
          + outputCounts.total());
    }
    for (int token : outputTokenIds) {
      matcher.accept(token);
    }
    grammar = Optional.of(matcher);
    return this;
  }

  /** The structured-output constraint, when the request has one. */
  public Optional<GrammarMatcher> grammar() {
    return grammar;
  }

  public SamplingParams params() {
    return params;
  }

  /** Distinct prompt tokens, for the repetition penalty. */
  public TokenSet promptTokens() {
    return promptTokens;
  }

  /** Token ids masked while the output is shorter than min_tokens: EOS plus stop_token_ids. */
  public TokenSet minTokensStopIds() {
    return minTokensStopIds;
  }

  public OutputTokenCounts outputCounts() {
    return outputCounts;
  }

  /** The request's seed, or the random one drawn for an unseeded request. */
  public long seed() {
    return seed;
  }

  public int outputLength() {
    return outputCounts.total();
  }

  /**
   * The uniform in [0, 1) that belongs to the next token. Repeated calls before {@link #append}
   * return the same value, so a step that fails half-way does not shift the stream.
   */
  double uniform() {
    if (!hasPendingUniform) {
      pendingUniform = rng.nextDouble();
      hasPendingUniform = true;
    }
    return pendingUniform;
  }

  /**
   * Records a token that a backend sampled on its device (it never reads {@link #uniform}): the
   * same bookkeeping as a {@link Sampler}'s, so the output counts and the RNG position stay one per
   * token and a later step may sample this sequence on either side.
   */
  public void recordSampled(int tokenId) {
    if (tokenId < 0) {
      throw new IllegalArgumentException("tokenId must be non-negative, got " + tokenId);
    }
    append(tokenId);
  }

  /** Records a sampled token and consumes its uniform (drawn now if the sampler never asked). */
  void append(int tokenId) {
    uniform();
    hasPendingUniform = false;
    outputCounts.add(tokenId);
    grammar.ifPresent(g -> g.accept(tokenId));
  }
}
