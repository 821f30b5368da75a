package io.kvass.worker.step;

import io.kvass.worker.sampling.SamplingParams;

/**
 * A sequence the worker has not seen (or has dropped, after preemption): everything it needs, once.
 *
 * @param tokenIds           every known token: the prompt, then outputs already generated (a resumed sequence)
 * @param promptLength       how many of {@code tokenIds} are prompt
 * @param numComputedTokens  tokens whose K/V is already in the blocks (a prefix-cache hit)
 * @param numScheduledTokens tokens to compute in this step, starting at {@code numComputedTokens}
 * @param blockTable         the sequence's blocks, covering computed + scheduled tokens
 * @param seed               the sampler's seed (the request's, or one the scheduler drew), so a resumed
 *                           sequence continues its random stream exactly
 * @param adapterSlot        the backend's LoRA slot, 0 for the base model
 */
public record NewSequence(String seqId, int[] tokenIds, int promptLength, int numComputedTokens,
                          int numScheduledTokens, int[] blockTable, SamplingParams params, long seed, int adapterSlot) {
}
