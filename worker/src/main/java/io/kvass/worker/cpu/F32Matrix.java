package io.kvass.worker.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** fp32 weights. */
final class F32Matrix implements Matrix {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final MemorySegment data;
    private final int rows;
    private final int cols;

    F32Matrix(MemorySegment data, int rows, int cols) {
        this.data = data;
        this.rows = rows;
        this.cols = cols;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public long byteSize() {
        return (long) rows * cols * Float.BYTES;
    }

    @Override
    public MemorySegment data() {
        return data;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        MemorySegment.copy(data, FLOAT, (long) r * cols * Float.BYTES, dst, off, cols);
    }

    private FloatVector load(long byteOffset) {
        return FloatVector.fromMemorySegment(F, data, byteOffset, ByteOrder.LITTLE_ENDIAN);
    }

    private float scalar(long index) {
        return data.getAtIndex(FLOAT, index);
    }

    @Override
    public void multiply(float[] x, int nTok, float[] out, int r0, int r1) {
        int L = F.length();
        int vecEnd = F.loopBound(cols);
        for (int r = r0; r < r1; r++) {
            long rowIdx = (long) r * cols;
            int t = 0;
            // NOTE: four tokens share each loaded weight vector; the row stays in L1 across token groups.
            for (; t + 4 <= nTok; t += 4) {
                int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < vecEnd; c += L) {
                    FloatVector w = load((rowIdx + c) * Float.BYTES);
                    a0 = w.fma(FloatVector.fromArray(F, x, x0 + c), a0);
                    a1 = w.fma(FloatVector.fromArray(F, x, x1 + c), a1);
                    a2 = w.fma(FloatVector.fromArray(F, x, x2 + c), a2);
                    a3 = w.fma(FloatVector.fromArray(F, x, x3 + c), a3);
                }
                float s0 = a0.reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
                float s1 = a1.reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
                float s2 = a2.reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
                float s3 = a3.reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
                for (int c = vecEnd; c < cols; c++) {
                    float w = scalar(rowIdx + c);
                    s0 += w * x[x0 + c];
                    s1 += w * x[x1 + c];
                    s2 += w * x[x2 + c];
                    s3 += w * x[x3 + c];
                }
                out[t * rows + r] = s0;
                out[(t + 1) * rows + r] = s1;
                out[(t + 2) * rows + r] = s2;
                out[(t + 3) * rows + r] = s3;
            }
            for (; t < nTok; t++) {
                int x0 = t * cols;
                FloatVector a0 = FloatVector.zero(F);
                for (int c = 0; c < vecEnd; c += L) {
                    a0 = load((rowIdx + c) * Float.BYTES).fma(FloatVector.fromArray(F, x, x0 + c), a0);
                }
                float s0 = a0.reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
                for (int c = vecEnd; c < cols; c++) {
                    s0 += scalar(rowIdx + c) * x[x0 + c];
                }
                out[t * rows + r] = s0;
            }
        }
    }
}
