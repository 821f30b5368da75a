package io.kvass.worker.cpu;

import io.kvass.worker.model.ModelConfig;

/** Causal attention of each new token over its own sequence's paged K/V (GQA: heads share K/V heads). */
final class Attention {
    private final ModelConfig config;
    private final CpuKvCache cache;
    private final CpuThreads threads;
    private final float scale;

    Attention(ModelConfig config, CpuKvCache cache, CpuThreads threads) {
        this.config = config;
        this.cache = cache;
        this.threads = threads;
        this.scale = (float) (1.0 / Math.sqrt(config.headDim()));
    }

    /** Stores the new tokens' K/V rows in their slots. k, v: [numTokens, kvDim]. */
    void write(int layer, Step step, float[] k, float[] v) {
        write(layer, step, k, v, 0, config.numKvHeads());
    }

    /** Stores K/V heads {@code [kv0, kv1)} of the new tokens in their slots. */
    private void write(int layer, Step step, float[] k, float[] v, int kv0, int kv1) {
        int kvDim = config.kvDim(), hd = config.headDim();
        for (int t = 0; t < step.numTokens; t++) {
            int slot = cache.offset(step.blockTables[step.sequenceOf[t]], step.positions[t]);
            int from = t * kvDim + kv0 * hd, len = (kv1 - kv0) * hd;
            System.arraycopy(k, from, cache.keys[layer], slot + kv0 * hd, len);
            System.arraycopy(v, from, cache.values[layer], slot + kv0 * hd, len);
        }
    }

    /**
     * K/V heads {@code [kv0, kv1)} on the calling thread: stores the new tokens' K/V of those heads, then
     * attends every token with the query heads that share them. Touches no other head's data, so threads
     * that own disjoint K/V heads need no barrier between their projections and their attention.
     */
    void kvHeads(int layer, Step step, float[] q, float[] k, float[] v, float[] out, int kv0, int kv1) {
        write(layer, step, k, v, kv0, kv1);
        int group = config.numHeads() / config.numKvHeads();
        float[] scores = new float[maxPosition(step) + 1];
        for (int t = 0; t < step.numTokens; t++) {
            for (int h = kv0 * group; h < kv1 * group; h++) {
                head(layer, step, t, h, q, out, scores);
            }
        }
    }

    /** q: [numTokens, qDim] -> out: [numTokens, qDim]; positions {@code 0..pos} of the token's sequence. */
    void compute(int layer, Step step, float[] q, float[] out) {
        int heads = config.numHeads();
        threads.forRange(step.numTokens * heads, (start, end) -> {
            float[] scores = new float[maxPosition(step) + 1];
            for (int task = start; task < end; task++) {
                head(layer, step, task / heads, task % heads, q, out, scores);
            }
            return 0;
        });
    }

    private void head(int layer, Step step, int t, int h, float[] q, float[] out, float[] scores) {
        int hd = config.headDim();
        int kvHead = h / (config.numHeads() / config.numKvHeads());
        int[] table = step.blockTables[step.sequenceOf[t]];
        int pos = step.positions[t];
        int qOff = t * config.qDim() + h * hd;
        float[] keys = cache.keys[layer];
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j <= pos; j++) {
            float s = VectorMath.dot(q, qOff, keys, cache.offset(table, j) + kvHead * hd, hd) * scale;
            scores[j] = s;
            max = Math.max(max, s);
        }
        float sum = 0;
        for (int j = 0; j <= pos; j++) {
            scores[j] = (float) Math.exp(scores[j] - max);
            sum += scores[j];
        }
        java.util.Arrays.fill(out, qOff, qOff + hd, 0f);
        float[] values = cache.values[layer];
        float inv = 1f / sum;
        for (int j = 0; j <= pos; j++) {
            VectorMath.axpy(scores[j] * inv, values, cache.offset(table, j) + kvHead * hd, out, qOff, hd);
        }
    }

    private static int maxPosition(Step step) {
        int max = 0;
        for (int p : step.positions) {
            max = Math.max(max, p);
        }
        return max;
    }
}
