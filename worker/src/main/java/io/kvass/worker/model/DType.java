package io.kvass.worker.model;

import java.util.Locale;

/** Element types a checkpoint may store; compute is always fp32 on the CPU. */
public enum DType {
    F32(4), BF16(2), F16(2);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** Parses a safetensors dtype string ("BF16", "F16", "F32"). */
    public static DType ofSafetensors(String name, String tensor) {
        return switch (name.toUpperCase(Locale.ROOT)) {
            case "F32" -> F32;
            case "BF16" -> BF16;
            case "F16" -> F16;
            default -> throw new ModelLoadException(
                    "tensor '" + tensor + "' has dtype " + name + "; supported: F32, BF16, F16");
        };
    }
}
