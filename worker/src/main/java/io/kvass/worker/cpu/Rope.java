package io.kvass.worker.cpu;

/**
 * Rotary embeddings in transformers' rotate-half form: pair {@code (i, i + headDim/2)} turns by
 * {@code pos * invFreq[i]}. The angles depend on the positions only, so a step computes them once for
 * all its layers.
 */
final class Rope {
    private final int half;
    /** [token][i] for i in [0, headDim/2). */
    private final float[] cos;
    private final float[] sin;

    Rope(int headDim, int[] positions, float[] invFreq) {
        this.half = headDim / 2;
        this.cos = new float[positions.length * half];
        this.sin = new float[positions.length * half];
        for (int t = 0; t < positions.length; t++) {
            for (int i = 0; i < half; i++) {
                // NOTE: the angle is an fp32 product, as transformers computes it, then cos/sin of that float.
                float angle = positions[t] * invFreq[i];
                cos[t * half + i] = (float) Math.cos(angle);
                sin[t * half + i] = (float) Math.sin(angle);
            }
        }
    }

    /** Rotates heads {@code [h0, h1)} of every token of {@code x}: [numTokens, heads * headDim]. */
    void apply(float[] x, int heads, int h0, int h1) {
        int headDim = 2 * half;
        for (int t = 0; t < cos.length / half; t++) {
            for (int h = h0; h < h1; h++) {
                int base = (t * heads + h) * headDim;
                for (int i = 0; i < half; i++) {
                    float c = cos[t * half + i], s = sin[t * half + i];
                    float x1 = x[base + i];
                    float x2 = x[base + i + half];
                    x[base + i] = x1 * c - x2 * s;
                    x[base + i + half] = x2 * c + x1 * s;
                }
            }
        }
    }
}
