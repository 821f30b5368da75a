/**
 * CPU sampling: turns one sequence's logits row into the next token, with vLLM v1 semantics.
 *
 * <p>Pipeline per sequence ({@link io.kvass.worker.sampling.CpuSampler}): raw logprobs (log-softmax
 * of the model output, vLLM's default {@code raw_logprobs}) -> logits processors (min_tokens,
 * then repetition / frequency / presence penalties) -> greedy argmax, or temperature -> min_p ->
 * top_k -> top_p -> softmax -> one uniform draw from the sequence's own RNG.
 *
 * <p>NOTE: every sampled token advances the sequence's RNG exactly once (greedy included), so a
 * seeded sequence is reproducible whatever else shares the batch, and a state can be rebuilt
 * from (params, prompt, tokens generated so far) after a failover.
 */
package io.kvass.worker.sampling;
