package io.kvass.scheduler.engine;

import java.util.List;

/**
 * How many tokens each engine step processed (prefill chunks and decode tokens alike), as cumulative
 * bucket counts over vLLM's bounds for {@code vllm:iteration_tokens_total}. Immutable: a snapshot.
 *
 * @param counts counts[i] steps had at most BOUNDS[i] tokens (cumulative); the last entry counts every step
 */
public record IterationTokens(List<Long> counts, long sum) implements io.kvass.worker.wire.CrossNode {
    /** vLLM's buckets (vllm/v1/metrics/loggers.py); +Inf follows. */
    public static final List<Integer> BOUNDS = List.of(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384);
    public static final IterationTokens NONE = new IterationTokens(new long[BOUNDS.size() + 1], 0);

    public IterationTokens {
        counts = List.copyOf(counts);
        if (counts.size() != BOUNDS.size() + 1) {
            throw new IllegalArgumentException("one count per bound and one for +Inf");
        }
    }

    private IterationTokens(long[] counts, long sum) {
        this(java.util.Arrays.stream(counts).boxed().toList(), sum);
    }

    public long count() {
        return counts.getLast();
    }

    /** Counts steps into per-bucket (not cumulative) tallies; single-writer, the engine actor's. */
    public static final class Recorder {
        private final long[] perBucket = new long[BOUNDS.size() + 1];
        private long sum;

        public void record(int tokens) {
            int i = 0;
            while (i < BOUNDS.size() && tokens > BOUNDS.get(i)) {
                i++;
            }
            perBucket[i]++;
            sum += tokens;
        }

        public IterationTokens snapshot() {
            long[] cumulative = new long[perBucket.length];
            long running = 0;
            for (int i = 0; i < perBucket.length; i++) {
                running += perBucket[i];
                cumulative[i] = running;
            }
            return new IterationTokens(cumulative, sum);
        }
    }
}
