package io.kvass.worker.model;

/**
 * Rotary embedding frequencies, as Hugging Face's {@code ROPE_INIT_FUNCTIONS} define them for the
 * types kvass supports: {@code default}, {@code linear} and {@code llama3}.
 *
 * @param precision the checkpoint's declared dtype. transformers keeps {@code inv_freq} as a module
 *     buffer, so a model loaded in bf16 carries bf16-rounded frequencies even when it then runs in
 *     fp32; its outputs (our references among them) depend on that rounding, so we reproduce it.
 */
public record RopeScaling(String type, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositions, DType precision) {

    public static RopeScaling plain(double theta) {
        return new RopeScaling("default", theta, 1, 0, 0, 0, DType.F32);
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
        float[] scaled = switch (type) {
            case "linear" -> scaleAll(inv);
            case "llama3" -> llama3(inv);
            default -> inv;
        };
        for (int i = 0; i < scaled.length; i++) {
            scaled[i] = roundTo(precision, scaled[i]);
        }
        return scaled;
    }

    /** Round to nearest even in {@code dtype}, back as fp32. */
    static float roundTo(DType dtype, float value) {
        return switch (dtype) {
            case F32 -> value;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
            case BF16 -> {
                int bits = Float.floatToRawIntBits(value);
                bits += 0x7FFF + ((bits >>> 16) & 1);
                yield Float.intBitsToFloat(bits & 0xFFFF0000);
            }
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
