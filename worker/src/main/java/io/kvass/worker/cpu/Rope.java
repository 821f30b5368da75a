package io.kvass.worker.cpu;

/** Rotary embeddings in transformers' rotate-half form: pair {@code (i, i + headDim/2)} turns by {@code pos * invFreq[i]}. */
final class Rope {
    private Rope() {
    }

    static void apply(float[] q, int qHeads, float[] k, int kHeads, int headDim, int[] positions, float[] invFreq) {
        int half = headDim / 2;
        float[] cos = new float[half];
        float[] sin = new float[half];
        for (int t = 0; t < positions.length; t++) {
            for (int i = 0; i < half; i++) {
                // NOTE: the angle is an fp32 product, as transformers computes it, then cos/sin of that float.
                float angle = positions[t] * invFreq[i];
                cos[i] = (float) Math.cos(angle);
                sin[i] = (float) Math.sin(angle);
            }
            rotate(q, t * qHeads * headDim, qHeads, headDim, cos, sin);
            rotate(k, t * kHeads * headDim, kHeads, headDim, cos, sin);
        }
    }

    private static void rotate(float[] x, int off, int heads, int headDim, float[] cos, float[] sin) {
        int half = headDim / 2;
        for (int h = 0; h < heads; h++) {
            int base = off + h * headDim;
            for (int i = 0; i < half; i++) {
                float x1 = x[base + i];
                float x2 = x[base + i + half];
                x[base + i] = x1 * cos[i] - x2 * sin[i];
                x[base + i + half] = x2 * cos[i] + x1 * sin[i];
            }
        }
    }
}
