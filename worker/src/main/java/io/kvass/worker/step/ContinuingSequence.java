package io.kvass.worker.step;

/**
 * A sequence the worker already holds: only the delta. The tokens to compute are the worker's own
 * record of the sequence, from its computed count on.
 *
 * @param firstChangedBlock block-table entries from this index on are replaced by {@code changedBlocks}
 */
public record ContinuingSequence(String seqId, int numScheduledTokens, int firstChangedBlock, int[] changedBlocks) {
}
