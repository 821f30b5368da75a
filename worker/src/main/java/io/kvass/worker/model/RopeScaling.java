package io.kvass.worker.model;

/**
 * Rotary embedding frequencies, as Hugging Face's {@code ROPE_INIT_FUNCTIONS} define them for the
 * types kvass supports: {@code default}, {@code linear} and {@code llama3}.
 *
 * <p>NOTE: the frequencies stay fp32 whatever the checkpoint's dtype, as {@code from_pretrained} and vLLM
 * keep them; rounding them to bf16 would move the logits of long positions (see the fixtures README).
 */
public record RopeScaling(String type, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositions) {

    public static RopeScaling plain(double theta) {
        return new RopeScaling("default", theta, 1, 0, 0, 0);
    }

    public RopeScaling {
        switch (type) {
            case "default", "linear", "llama3" -> { }
            default -> throw new ModelLoadException("unsupported rope type '" + type + "'; supported: default, linear, llama3");
        }
        if (theta <= 0 || factor <= 0) {
            throw new ModelLoadException("rope theta and factor must be positive, got " + theta + ", " + factor);
        }
    }

    /** Inverse frequencies for the {@code headDim / 2} rotated pairs, in fp32 as transformers computes them. */
    public float[] inverseFrequencies(int headDim) {
        float[] inv = new float[headDim / 2];
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / headDim;
            inv[i] = (float) (1.0 / Math.pow(theta, exponent));
        }
        return switch (type) {
            case "linear" -> scaleAll(inv);
            case "llama3" -> llama3(inv);
            default -> inv;
        };
    }

    private float[] scaleAll(float[] inv) {
        for (int i = 0; i < inv.length; i++) {
            inv[i] = (float) (inv[i] / factor);
        }
        return inv;
    }

    /** Llama 3.1: long wavelengths slowed by {@code factor}, short ones kept, a smooth blend between. */
    private float[] llama3(float[] inv) {
        double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
        double highFreqWavelen = originalMaxPositions / highFreqFactor;
        for (int i = 0; i < inv.length; i++) {
            double wavelen = 2 * Math.PI / inv[i];
            if (wavelen > lowFreqWavelen) {
                inv[i] = (float) (inv[i] / factor);
            } else if (wavelen >= highFreqWavelen) {
                double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                inv[i] = (float) ((1 - smooth) * inv[i] / factor + smooth * inv[i]);
            }
        }
        return inv;
    }
}
