package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * Runs a batch with more tokens than one step holds as consecutive smaller steps. A sequence cut in
 * two is chunked prefill: its later piece attends to the K/V the earlier piece wrote. Logits rows come
 * back exactly as one step would have returned them.
 */
final class BatchSplitter {
    private BatchSplitter() {
    }

    /** A piece of sequence {@code index} of the original batch. */
    record Piece(int index, SequenceForward forward) {
    }

    static List<float[][]> forward(List<SequenceForward> batch, int maxTokens, Function<List<SequenceForward>, List<float[][]>> step) {
        List<List<float[]>> rows = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
            rows.add(new ArrayList<>());
        }
        for (List<Piece> part : split(batch, maxTokens)) {
            List<float[][]> out = step.apply(part.stream().map(Piece::forward).toList());
            for (int i = 0; i < part.size(); i++) {
                rows.get(part.get(i).index()).addAll(Arrays.asList(out.get(i)));
            }
        }
        List<float[][]> result = new ArrayList<>(batch.size());
        for (List<float[]> r : rows) {
            result.add(r.toArray(new float[0][]));
        }
        return result;
    }

    /** Steps of at most {@code maxTokens} tokens, in order; a sequence's pieces keep their order. */
    static List<List<Piece>> split(List<SequenceForward> batch, int maxTokens) {
        List<List<Piece>> steps = new ArrayList<>();
        List<Piece> current = new ArrayList<>();
        int used = 0;
        for (int i = 0; i < batch.size(); i++) {
            SequenceForward s = batch.get(i);
            int done = 0;
            while (done < s.numTokens()) {
                if (used == maxTokens) {
                    steps.add(current);
                    current = new ArrayList<>();
                    used = 0;
                }
                int take = Math.min(s.numTokens() - done, maxTokens - used);
                boolean last = done + take == s.numTokens();
                LogitsMode mode = s.logits() == LogitsMode.LAST && !last ? LogitsMode.NONE : s.logits();
                current.add(new Piece(i, new SequenceForward(Arrays.copyOfRange(s.tokenIds(), done, done + take),
                        s.startPosition() + done, s.blockTable(), mode, s.adapterSlot())));
                done += take;
                used += take;
            }
        }
        if (!current.isEmpty()) {
            steps.add(current);
        }
        return steps;
    }
}
