package io.kvass.worker.sampling;

/** One (token, log-probability) pair, as in OpenAI's {@code top_logprobs}. */
public record TokenLogprob(int tokenId, float logprob) {}
