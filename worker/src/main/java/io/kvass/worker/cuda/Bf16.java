package io.kvass.worker.cuda;

/** bfloat16 conversions as the GPU does them: round to nearest even, NaN kept a NaN. */
final class Bf16 {
    private Bf16() {
    }

    static short of(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) 0x7fc0;
        }
        bits += 0x7FFF + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    static float round(float value) {
        return toFloat(of(value));
    }
}
