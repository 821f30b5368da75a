package io.kvass.worker.cpu;

import io.kvass.worker.model.DType;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A weight matrix {@code [rows, cols]} (PyTorch's {@code [out, in]}) that multiplies a batch of fp32
 * activation rows. Weights stay in their stored dtype and are widened to fp32 inside the kernel.
 */
public sealed interface Matrix permits F32Matrix, Bf16Matrix, PackedBf16Matrix {

    int rows();

    int cols();

    /**
     * {@code out[t * rows() + r] = dot(W[r], x[t * cols() ..])} for rows {@code [r0, r1)} and tokens
     * {@code [0, nTok)}. x: [nTok, cols], out: [nTok, rows].
     */
    void multiply(float[] x, int nTok, float[] out, int r0, int r1);

    /** Copies row {@code r} widened to fp32 into {@code dst[off ..]} (embedding lookup). */
    void row(int r, float[] dst, int off);

    /** Bytes streamed from memory by one full multiply: the decode step's floor is their sum / bandwidth. */
    long byteSize();

    /** The memory the kernels read (a benchmark streams it to measure the floor on the same pages). */
    MemorySegment data();

    /**
     * Wraps a 2-D tensor; f16 is widened to f32 once here (there is no fast f16 path in the Vector API),
     * bf16 is stored in {@code format} (wider than {@link Bf16Matrix#TILE} columns in tiles); the result is placed
     * in {@code memory}, owned by {@code arena}.
     */
    static Matrix of(Tensor t, CpuWeightMemory memory, CpuWeightFormat format, Arena arena) {
        if (t.shape().length != 2) {
            throw new ModelLoadException("tensor '" + t.name() + "' should be 2-D, is " + t);
        }
        int rows = Math.toIntExact(t.shape()[0]);
        int cols = Math.toIntExact(t.shape()[1]);
        return switch (t.dtype()) {
            case F32 -> new F32Matrix(memory.place(t.data(), arena), rows, cols);
            case BF16 -> format.matrix(t.data(), rows, cols, memory, arena);
            case F16 -> new F32Matrix(Widening.toF32(t, memory.allocate(t.numel() * Float.BYTES, arena)), rows, cols);
        };
    }

    /** Reads a 1-D tensor (norm weights, biases) into a heap array. */
    static float[] vector(Tensor t) {
        if (t.shape().length != 1) {
            throw new ModelLoadException("tensor '" + t.name() + "' should be 1-D, is " + t);
        }
        float[] out = new float[Math.toIntExact(t.shape()[0])];
        MemorySegment data = t.data();
        for (int i = 0; i < out.length; i++) {
            out[i] = Widening.element(t.dtype(), data, i);
        }
        return out;
    }

    /** Scalar conversions for loading and tails. */
    final class Widening {
        private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
        private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

        private Widening() {
        }

        static float element(DType dtype, MemorySegment data, long index) {
            return switch (dtype) {
                case F32 -> data.getAtIndex(FLOAT, index);
                case BF16 -> bf16(data.getAtIndex(SHORT, index));
                case F16 -> Float.float16ToFloat(data.getAtIndex(SHORT, index));
            };
        }

        static float bf16(short bits) {
            return Float.intBitsToFloat(bits << 16);
        }

        static MemorySegment toF32(Tensor t, MemorySegment out) {
            for (long i = 0; i < t.numel(); i++) {
                out.setAtIndex(FLOAT, i, element(t.dtype(), t.data(), i));
            }
            return out;
        }
    }
}
