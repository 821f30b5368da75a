package io.kvass.worker.sampling;

import io.kvass.worker.grammar.GrammarSpec;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;

/**
 * Per-request decoding parameters, with OpenAI / vLLM names and limits.
 *
 * <p>Validation happens here, once, so a request the {@code http} layer accepted can never make
 * a worker throw; messages name the parameter as the client spelled it (snake_case).
 *
 * @param n completions per prompt (each child gets its own sequence, see {@link #forChild})
 * @param temperature 0 (or below {@link #GREEDY_EPSILON}) means greedy
 * @param topP nucleus mass in (0, 1]; 1 disables
 * @param topK -1 or 0 disables; otherwise keep the k most likely tokens
 * @param minP drop tokens whose probability is below {@code minP * maxProbability}; 0 disables
 * @param presencePenalty subtracted once from every token already in the output
 * @param frequencyPenalty subtracted per occurrence of the token in the output
 * @param repetitionPenalty divides positive / multiplies negative logits of tokens seen in the
 *     prompt or the output; 1 disables
 * @param seed makes sampling reproducible; empty means a random seed per sequence
 * @param maxTokens upper bound on generated tokens
 * @param minTokens stop tokens (EOS and {@code stopTokenIds}) are masked until this many tokens
 * @param ignoreEos keep generating past EOS (read by the stop checker, not the sampler)
 * @param stop stop strings (read by the detokenizer)
 * @param stopTokenIds token ids that end the sequence besides EOS
 * @param logprobs how many top logprobs to return per token (0..20); empty means none at all
 * @param skipSpecialTokens whether detokenized text omits special tokens
 * @param grammar structured output: the language the output must belong to (masked in sampling)
 */
public record SamplingParams(
    int n,
    float temperature,
    float topP,
    int topK,
    float minP,
    float presencePenalty,
    float frequencyPenalty,
    float repetitionPenalty,
    OptionalLong seed,
    int maxTokens,
    int minTokens,
    boolean ignoreEos,
    List<String> stop,
    Set<Integer> stopTokenIds,
    OptionalInt logprobs,
    boolean skipSpecialTokens,
    Optional<GrammarSpec> grammar) {

  /** vLLM's {@code _SAMPLING_EPS}: temperatures below it are treated as greedy. */
  public static final float GREEDY_EPSILON = 1e-5f;

  /** vLLM's default {@code max_logprobs}, and OpenAI's {@code top_logprobs} limit. */
  public static final int MAX_LOGPROBS = 20;

  /** OpenAI's upper bound; vLLM enforces it too. */
  public static final float MAX_TEMPERATURE = 2f;

  public SamplingParams {
    Objects.requireNonNull(seed, "seed");
    Objects.requireNonNull(logprobs, "logprobs");
    Objects.requireNonNull(grammar, "grammar");
    stop = List.copyOf(Objects.requireNonNull(stop, "stop"));
    stopTokenIds = Set.copyOf(Objects.requireNonNull(stopTokenIds, "stopTokenIds"));

    // Negated comparisons so that NaN fails every range check.
    check(n >= 1, "n must be at least 1, got %d.", n);
    check(temperature >= 0f && temperature <= MAX_TEMPERATURE,
        "temperature must be in [0, 2], got %s.", temperature);
    check(topP > 0f && topP <= 1f, "top_p must be in (0, 1], got %s.", topP);
    check(topK >= -1, "top_k must be -1 or 0 (disable), or at least 1, got %d.", topK);
    check(minP >= 0f && minP <= 1f, "min_p must be in [0, 1], got %s.", minP);
    check(presencePenalty >= -2f && presencePenalty <= 2f,
        "presence_penalty must be in [-2, 2], got %s.", presencePenalty);
    check(frequencyPenalty >= -2f && frequencyPenalty <= 2f,
        "frequency_penalty must be in [-2, 2], got %s.", frequencyPenalty);
    check(repetitionPenalty > 0f && Float.isFinite(repetitionPenalty),
        "repetition_penalty must be a finite number greater than zero, got %s.",
        repetitionPenalty);
    check(maxTokens >= 1, "max_tokens must be at least 1, got %d.", maxTokens);
    check(minTokens >= 0, "min_tokens must be greater than or equal to 0, got %d.", minTokens);
    check(minTokens <= maxTokens,
        "min_tokens must be less than or equal to max_tokens=%d, got %d.", maxTokens, minTokens);
    for (String s : stop) {
      check(!s.isEmpty(), "stop cannot contain an empty string.");
    }
    for (int id : stopTokenIds) {
      check(id >= 0, "stop_token_ids must be non-negative token ids, got %d.", id);
    }
    if (logprobs.isPresent()) {
      int k = logprobs.getAsInt();
      check(k >= 0 && k <= MAX_LOGPROBS, "logprobs must be in [0, %d], got %d.", MAX_LOGPROBS, k);
    }
  }

  private static void check(boolean ok, String format, Object... args) {
    if (!ok) {
      throw new IllegalArgumentException(String.format(format, args));
    }
  }

  /** OpenAI / vLLM defaults: temperature 1, nothing filtered, 16 tokens. */
  public static SamplingParams defaults() {
    return builder().build();
  }

  /** Temperature 0: the argmax at every step. */
  public static SamplingParams greedy(int maxTokens) {
    return builder().temperature(0f).maxTokens(maxTokens).build();
  }

  public static Builder builder() {
    return new Builder();
  }

  public Builder toBuilder() {
    return new Builder(this);
  }

  public boolean isGreedy() {
    return temperature < GREEDY_EPSILON;
  }

  public boolean topKEnabled() {
    return topK > 0;
  }

  public SamplingParams withSeed(long newSeed) {
    return toBuilder().seed(newSeed).build();
  }

  public SamplingParams withMaxTokens(int newMaxTokens) {
    return toBuilder().maxTokens(newMaxTokens).build();
  }

  public SamplingParams withLogprobs(int topLogprobs) {
    return toBuilder().logprobs(topLogprobs).build();
  }

  /**
   * The parameters of the {@code index}-th of the {@code n} completions: n = 1 and, when seeded,
   * seed + index (as vLLM's {@code ParentRequest}), so siblings differ yet each is reproducible.
   */
  public SamplingParams forChild(int index) {
    Objects.checkIndex(index, n);
    Builder b = toBuilder().n(1);
    seed.ifPresent(s -> b.seed(s + index));
    return b.build();
  }

  /** Mutable builder starting from {@link #defaults()}'s values. */
  public static final class Builder {
    private int n = 1;
    private float temperature = 1f;
    private float topP = 1f;
    private int topK = 0;
    private float minP = 0f;
    private float presencePenalty = 0f;
    private float frequencyPenalty = 0f;
    private float repetitionPenalty = 1f;
    private OptionalLong seed = OptionalLong.empty();
    private int maxTokens = 16;
    private int minTokens = 0;
    private boolean ignoreEos = false;
    private List<String> stop = List.of();
    private Set<Integer> stopTokenIds = Set.of();
    private OptionalInt logprobs = OptionalInt.empty();
    private boolean skipSpecialTokens = true;
    private Optional<GrammarSpec> grammar = Optional.empty();

    private Builder() {}

    private Builder(SamplingParams p) {
      n = p.n;
      temperature = p.temperature;
      topP = p.topP;
      topK = p.topK;
      minP = p.minP;
      presencePenalty = p.presencePenalty;
      frequencyPenalty = p.frequencyPenalty;
      repetitionPenalty = p.repetitionPenalty;
      seed = p.seed;
      maxTokens = p.maxTokens;
      minTokens = p.minTokens;
      ignoreEos = p.ignoreEos;
      stop = p.stop;
      stopTokenIds = p.stopTokenIds;
      logprobs = p.logprobs;
      skipSpecialTokens = p.skipSpecialTokens;
      grammar = p.grammar;
    }

    public Builder n(int v) { n = v; return this; }
    public Builder temperature(float v) { temperature = v; return this; }
    public Builder topP(float v) { topP = v; return this; }
    public Builder topK(int v) { topK = v; return this; }
    public Builder minP(float v) { minP = v; return this; }
    public Builder presencePenalty(float v) { presencePenalty = v; return this; }
    public Builder frequencyPenalty(float v) { frequencyPenalty = v; return this; }
    public Builder repetitionPenalty(float v) { repetitionPenalty = v; return this; }
    public Builder seed(long v) { seed = OptionalLong.of(v); return this; }
    public Builder seed(OptionalLong v) { seed = v; return this; }
    public Builder maxTokens(int v) { maxTokens = v; return this; }
    public Builder minTokens(int v) { minTokens = v; return this; }
    public Builder ignoreEos(boolean v) { ignoreEos = v; return this; }
    public Builder stop(List<String> v) { stop = v; return this; }
    public Builder stopTokenIds(Set<Integer> v) { stopTokenIds = v; return this; }
    public Builder logprobs(int v) { logprobs = OptionalInt.of(v); return this; }
    public Builder logprobs(OptionalInt v) { logprobs = v; return this; }
    public Builder skipSpecialTokens(boolean v) { skipSpecialTokens = v; return this; }
    public Builder grammar(Optional<GrammarSpec> v) { grammar = v; return this; }

    public SamplingParams build() {
      return new SamplingParams(n, temperature, topP, topK, minP, presencePenalty,
          frequencyPenalty, repetitionPenalty, seed, maxTokens, minTokens, ignoreEos, stop,
          stopTokenIds, logprobs, skipSpecialTokens, grammar);
    }
  }
}
