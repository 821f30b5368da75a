package io.kvass.worker.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** bf16 weights, widened to fp32 by a 16-bit shift (or mask) inside the kernel. */
final class Bf16Matrix implements Matrix {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** bf16 columns per weight load: one int vector of F's shape holds two per lane. */
    private static final int BLOCK = 2 * F.length();
    /** Per-thread scratch for split x, reused across calls. */
    private static final ThreadLocal<float[]> SPLIT = ThreadLocal.withInitial(() -> new float[0]);

    private final MemorySegment data;
    private final int rows;
    private final int cols;

    Bf16Matrix(MemorySegment data, int rows, int cols) {
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
        return (long) rows * cols * Short.BYTES;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        long base = (long) r * cols;
        for (int c = 0; c < cols; c++) {
            dst[off + c] = scalar(base + c);
        }
    }

    private IntVector load(long byteOffset) {
        return IntVector.fromMemorySegment(I, data, byteOffset, ByteOrder.LITTLE_ENDIAN);
    }

    /*
     * NOTE: each int lane of a weight load holds two bf16 values, and bf16 is the top half of an fp32:
     * the even element is the lane shifted left by 16, the odd one the lane with its low half cleared.
     * Two cheap ALU ops widen 2L weights, where a widening convert costs a cross-lane shuffle per L.
     * x is split to match (see split()), so no shuffle is needed on either side.
     */
    private static FloatVector even(IntVector w) {
        return w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector w) {
        return w.and(0xFFFF0000).reinterpretAsFloats();
    }

    private float scalar(long index) {
        return Matrix.Widening.bf16(data.getAtIndex(SHORT, index));
    }

    /*
     * NOTE: both kernels compute each (row, token) dot in the same order (even and odd columns in two
     * accumulators, summed, reduceLanes, then the scalar tail), so a row's result does not depend on the
     * blocking, the batch it came in, or the thread split.
     */
    @Override
    public void multiply(float[] x, int nTok, float[] out, int r0, int r1) {
        int vecEnd = cols - cols % BLOCK;
        float[] xs = split(x, nTok, vecEnd);
        // NOTE: four tokens share each weight load; the row stays in L1 across token groups, so weights are
        // streamed from memory once. Decode is memory bound: one sequential stream per thread measured faster
        // here than two to four rows at once.
        for (int r = r0; r < r1; r++) {
            int t = 0;
            for (; t + 4 <= nTok; t += 4) {
                row1tokens4(xs, x, vecEnd, r, t, out);
            }
            for (; t < nTok; t++) {
                row(xs, x, vecEnd, r, t, out);
            }
        }
    }

    /** x with each block of {@code BLOCK} columns reordered to [even columns, odd columns]; tails untouched. */
    private float[] split(float[] x, int nTok, int vecEnd) {
        float[] xs = SPLIT.get();
        if (xs.length < nTok * cols) {
            xs = new float[nTok * cols];
            SPLIT.set(xs);
        }
        int half = BLOCK / 2;
        for (int t = 0; t < nTok; t++) {
            int base = t * cols;
            for (int b = base; b < base + vecEnd; b += BLOCK) {
                for (int k = 0; k < half; k++) {
                    xs[b + k] = x[b + 2 * k];
                    xs[b + half + k] = x[b + 2 * k + 1];
                }
            }
        }
        return xs;
    }

    /** Row r times token t. */
    private void row(float[] xs, float[] x, int vecEnd, int r, int t, float[] out) {
        int L = F.length();
        long w = (long) r * cols * Short.BYTES;
        int xo = t * cols;
        FloatVector even = FloatVector.zero(F), odd = even;
        for (int c = 0; c < vecEnd; c += BLOCK) {
            IntVector p = load(w + (long) c * Short.BYTES);
            even = even(p).fma(FloatVector.fromArray(F, xs, xo + c), even);
            odd = odd(p).fma(FloatVector.fromArray(F, xs, xo + c + L), odd);
        }
        out[t * rows + r] = finish(even, odd, r, x, xo, vecEnd);
    }

    /** Row r times tokens {@code [t, t + 4)}; accumulators named by token, even/odd. */
    private void row1tokens4(float[] xs, float[] x, int vecEnd, int r, int t, float[] out) {
        int L = F.length();
        long w = (long) r * cols * Short.BYTES;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        for (int c = 0; c < vecEnd; c += BLOCK) {
            IntVector p = load(w + (long) c * Short.BYTES);
            FloatVector pe = even(p), po = odd(p);
            e0 = pe.fma(FloatVector.fromArray(F, xs, x0 + c), e0);
            o0 = po.fma(FloatVector.fromArray(F, xs, x0 + c + L), o0);
            e1 = pe.fma(FloatVector.fromArray(F, xs, x1 + c), e1);
            o1 = po.fma(FloatVector.fromArray(F, xs, x1 + c + L), o1);
            e2 = pe.fma(FloatVector.fromArray(F, xs, x2 + c), e2);
            o2 = po.fma(FloatVector.fromArray(F, xs, x2 + c + L), o2);
            e3 = pe.fma(FloatVector.fromArray(F, xs, x3 + c), e3);
            o3 = po.fma(FloatVector.fromArray(F, xs, x3 + c + L), o3);
        }
        out[t * rows + r] = finish(e0, o0, r, x, x0, vecEnd);
        out[(t + 1) * rows + r] = finish(e1, o1, r, x, x1, vecEnd);
        out[(t + 2) * rows + r] = finish(e2, o2, r, x, x2, vecEnd);
        out[(t + 3) * rows + r] = finish(e3, o3, r, x, x3, vecEnd);
    }

    /** The lanes' sum plus the columns past the last full block. */
    private float finish(FloatVector even, FloatVector odd, int r, float[] x, int xOff, int vecEnd) {
        float s = even.add(odd).reduceLanes(VectorOperators.ADD);
        long rowIdx = (long) r * cols;
        for (int c = vecEnd; c < cols; c++) {
            s += scalar(rowIdx + c) * x[xOff + c];
        }
        return s;
    }
}
