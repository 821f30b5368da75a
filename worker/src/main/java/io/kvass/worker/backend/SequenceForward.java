package io.kvass.worker.backend;

import java.util.Arrays;

/**
 * One sequence's share of a forward pass: its new tokens, the position of the first of them, and
 * its block table. K/V of positions {@code [0, startPosition)} are already in the cache blocks.
 * NOTE: the block table must cover {@code startPosition + tokenIds.length} positions.
 *
 * @param adapterSlot LoRA adapter slot on the backend, or {@code 0} for the base model
 */
public record SequenceForward(int[] tokenIds, int startPosition, int[] blockTable, LogitsMode logits, int adapterSlot) {

    public SequenceForward {
        if (tokenIds.length == 0) {
            throw new IllegalArgumentException("a sequence in a forward pass needs at least one new token");
        }
        if (startPosition < 0) {
            throw new IllegalArgumentException("negative start position " + startPosition);
        }
    }

    public SequenceForward(int[] tokenIds, int startPosition, int[] blockTable, LogitsMode logits) {
        this(tokenIds, startPosition, blockTable, logits, 0);
    }

    public int numTokens() {
        return tokenIds.length;
    }

    public int endPosition() {
        return startPosition + tokenIds.length;
    }

    @Override
    public String toString() {
        return "SequenceForward[tokens=" + tokenIds.length + ", start=" + startPosition + ", blocks="
                + Arrays.toString(blockTable) + ", logits=" + logits + ", adapter=" + adapterSlot + "]";
    }
}
