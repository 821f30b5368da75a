package io.kvass.worker.cpu;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.ModelConfig;
import java.util.List;

/** A batch flattened to tokens: for token {@code t}, its id, position and sequence. Validated once. */
final class Step {
    final int numTokens;
    final int[] tokens;
    final int[] positions;
    final int[] sequenceOf;
    final int[][] blockTables;

    private Step(int numTokens, int numSequences) {
        this.numTokens = numTokens;
        this.tokens = new int[numTokens];
        this.positions = new int[numTokens];
        this.sequenceOf = new int[numTokens];
        this.blockTables = new int[numSequences][];
    }

    static Step of(List<SequenceForward> batch, ModelConfig config, CpuKvCache cache) {
        if (batch.isEmpty()) {
            throw new IllegalArgumentException("empty forward batch");
        }
        Step step = new Step(batch.stream().mapToInt(SequenceForward::numTokens).sum(), batch.size());
        int t = 0;
        for (int s = 0; s < batch.size(); s++) {
            SequenceForward seq = batch.get(s);
            if (seq.endPosition() > config.maxPositions()) {
                throw new IllegalArgumentException("sequence " + s + " reaches position " + seq.endPosition()
                        + ", beyond the model's " + config.maxPositions());
            }
            if ((long) seq.blockTable().length * cache.blockSize < seq.endPosition()) {
                throw new IllegalArgumentException("sequence " + s + "'s block table covers "
                        + seq.blockTable().length * cache.blockSize + " positions, needs " + seq.endPosition());
            }
            for (int block : seq.blockTable()) {
                if (block < 0 || block >= cache.numBlocks) {
                    throw new IllegalArgumentException("block id " + block + " outside the pool of " + cache.numBlocks);
                }
            }
            step.blockTables[s] = seq.blockTable();
            for (int i = 0; i < seq.numTokens(); i++, t++) {
                int id = seq.tokenIds()[i];
                if (id < 0 || id >= config.vocabSize()) {
                    throw new IllegalArgumentException("token id " + id + " outside the vocabulary of " + config.vocabSize());
                }
                step.tokens[t] = id;
                step.positions[t] = seq.startPosition() + i;
                step.sequenceOf[t] = s;
            }
        }
        return step;
    }

    /** Flat token indices whose logits the batch asked for, in batch order. */
    int[] logitRows(List<SequenceForward> batch) {
        int[] rows = new int[numTokens];
        int count = 0, first = 0;
        for (SequenceForward s : batch) {
            if (s.logits() == LogitsMode.ALL) {
                for (int i = 0; i < s.numTokens(); i++) {
                    rows[count++] = first + i;
                }
            } else if (s.logits() == LogitsMode.LAST) {
                rows[count++] = first + s.numTokens() - 1;
            }
            first += s.numTokens();
        }
        return java.util.Arrays.copyOf(rows, count);
    }
}
