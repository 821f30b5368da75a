package io.kvass.worker.testing;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import java.util.ArrayList;
import java.util.List;

/**
 * Drives a backend directly (no scheduler): prefill all prompts in one step, then greedy decode in
 * lockstep. Each prompt gets its own contiguous run of blocks — enough for backend-only checks.
 */
public final class GreedyRunner {

    /** Per prompt: the prefill logits (every position) and the greedy ids with each step's logits. */
    public record Result(float[][] prefillLogits, int[] greedy, float[][] decodeLogits) {
    }

    private GreedyRunner() {
    }

    public static List<Result> run(Backend backend, List<int[]> prompts, int steps) {
        return run(backend, prompts, new int[prompts.size()], steps);
    }

    /** As {@link #run(Backend, List, int)}, prompt {@code s} running on LoRA slot {@code adapterSlots[s]} (0 = base). */
    public static List<Result> run(Backend backend, List<int[]> prompts, int[] adapterSlots, int steps) {
        int bs = backend.blockSize();
        int blocksEach = (prompts.stream().mapToInt(p -> p.length).max().orElse(0) + steps + bs - 1) / bs;
        if (blocksEach * prompts.size() > backend.numKvBlocks()) {
            throw new IllegalArgumentException("backend has too few KV blocks for this test");
        }
        List<int[]> tables = new ArrayList<>();
        for (int s = 0; s < prompts.size(); s++) {
            int[] table = new int[blocksEach];
            for (int b = 0; b < blocksEach; b++) {
                table[b] = s * blocksEach + b;
            }
            tables.add(table);
        }
        List<SequenceForward> prefill = new ArrayList<>();
        for (int s = 0; s < prompts.size(); s++) {
            prefill.add(new SequenceForward(prompts.get(s), 0, tables.get(s), LogitsMode.ALL, adapterSlots[s]));
        }
        List<float[][]> prefillLogits = backend.forward(prefill);
        int[][] greedy = new int[prompts.size()][steps];
        float[][][] decode = new float[prompts.size()][steps][];
        for (int s = 0; s < prompts.size(); s++) {
            float[][] rows = prefillLogits.get(s);
            decode[s][0] = rows[rows.length - 1];
            greedy[s][0] = argmax(decode[s][0]);
        }
        for (int step = 1; step < steps; step++) {
            List<SequenceForward> batch = new ArrayList<>();
            for (int s = 0; s < prompts.size(); s++) {
                int pos = prompts.get(s).length + step - 1;
                batch.add(new SequenceForward(new int[] {greedy[s][step - 1]}, pos, tables.get(s), LogitsMode.LAST,
                        adapterSlots[s]));
            }
            List<float[][]> logits = backend.forward(batch);
            for (int s = 0; s < prompts.size(); s++) {
                decode[s][step] = logits.get(s)[0];
                greedy[s][step] = argmax(decode[s][step]);
            }
        }
        List<Result> results = new ArrayList<>();
        for (int s = 0; s < prompts.size(); s++) {
            results.add(new Result(prefillLogits.get(s), greedy[s], decode[s]));
        }
        return results;
    }

    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }
}
