package io.kvass.worker.model;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A named weight tensor viewing (not copying) its bytes, usually an mmapped checkpoint.
 * NOTE: {@code data.byteSize() == numel * dtype.bytes()}, little-endian, row-major.
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data) {

    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Throws a {@link ModelLoadException} naming the tensor unless its shape is {@code expected}. */
    public Tensor requireShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new ModelLoadException("tensor '" + name + "' has shape " + Arrays.toString(shape)
                    + " but the config implies " + Arrays.toString(expected));
        }
        return this;
    }

    @Override
    public String toString() {
        return name + dtype + Arrays.toString(shape);
    }
}
