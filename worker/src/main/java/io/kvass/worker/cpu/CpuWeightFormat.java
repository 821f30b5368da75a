package io.kvass.worker.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;

/** How the CPU backend stores bf16 weight matrices; both hold every weight bit for bit. */
public enum CpuWeightFormat {
    /** As in the model file, 16 bits per weight. */
    BF16 {
        @Override
        Matrix matrix(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena) {
            return new Bf16Matrix(tensor, rows, cols, memory, arena);
        }
    },
    /**
     * 12 bits per weight ({@link PackedBf16Matrix}), encoded at load; matrices it does not suit (too many distinct
     * exponents, no 512-bit vectors) stay bf16.
     */
    PACKED {
        @Override
        Matrix matrix(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena) {
            return PackedBf16Matrix.of(tensor, rows, cols, memory, arena);
        }
    };

    /**
     * What {@code --cpu-weight-format} is when not given. NOTE: batch-1 decode streams every weight per token and
     * is bound by memory bandwidth; packed weights are 25% fewer bytes, decoded faster than memory delivers them
     * on the 2-core Zen 4 benchmark VM: steps ~13% shorter at batch 1, 6-9% longer at batch 16 (compute bound;
     * docs/benchmarks.md, "CPU: lossless 12-bit packed bf16 weights").
     */
    public static final CpuWeightFormat DEFAULT = PACKED;

    /** A row-major {@code [rows, cols]} bf16 tensor as a matrix in this format, placed in {@code memory}. */
    abstract Matrix matrix(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena);

    /** {@code packed} or {@code bf16}, as {@code --cpu-weight-format} takes it. */
    public static CpuWeightFormat parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "packed" -> PACKED;
            case "bf16" -> BF16;
            default -> throw new IllegalArgumentException("unknown CPU weight format '" + name + "'; use packed or bf16");
        };
    }
}
