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
        int r = r0;
        if (nTok >= 4) {
            // Two rows by four tokens: each weight load feeds 16 FMAs, each x load 4, and the two rows stay
            // in L1/L2 across the token groups, so weights are streamed from memory once.
            for (; r + 2 <= r1; r += 2) {
                int t = 0;
                for (; t + 4 <= nTok; t += 4) {
                    rows2tokens4(xs, x, vecEnd, r, t, out);
                }
                for (; t < nTok; t++) {
                    row(xs, x, vecEnd, r, t, out);
                    row(xs, x, vecEnd, r + 1, t, out);
                }
            }
        }
        // Decode is memory bound: one sequential stream per thread measured faster here than 2-4 rows at once.
        for (; r < r1; r++) {
            for (int t = 0; t < nTok; t++) {
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

    /** Rows r, r + 1 times tokens {@code [t, t + 4)}; accumulators named by row, token, even/odd. */
    private void rows2tokens4(float[] xs, float[] x, int vecEnd, int r, int t, float[] out) {
        int L = F.length();
        long w0 = (long) r * cols * Short.BYTES, w1 = w0 + (long) cols * Short.BYTES;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector e00 = FloatVector.zero(F), e01 = e00, e02 = e00, e03 = e00, e10 = e00, e11 = e00, e12 = e00, e13 = e00;
        FloatVector o00 = e00, o01 = e00, o02 = e00, o03 = e00, o10 = e00, o11 = e00, o12 = e00, o13 = e00;
        for (int c = 0; c < vecEnd; c += BLOCK) {
            long off = (long) c * Short.BYTES;
            IntVector p = load(w0 + off), q = load(w1 + off);
            FloatVector pe = even(p), po = odd(p), qe = even(q), qo = odd(q);
            FloatVector xe = FloatVector.fromArray(F, xs, x0 + c), xo = FloatVector.fromArray(F, xs, x0 + c + L);
            e00 = pe.fma(xe, e00);
            o00 = po.fma(xo, o00);
            e10 = qe.fma(xe, e10);
            o10 = qo.fma(xo, o10);
            xe = FloatVector.fromArray(F, xs, x1 + c);
            xo = FloatVector.fromArray(F, xs, x1 + c + L);
            e01 = pe.fma(xe, e01);
            o01 = po.fma(xo, o01);
            e11 = qe.fma(xe, e11);
            o11 = qo.fma(xo, o11);
            xe = FloatVector.fromArray(F, xs, x2 + c);
            xo = FloatVector.fromArray(F, xs, x2 + c + L);
            e02 = pe.fma(xe, e02);
            o02 = po.fma(xo, o02);
            e12 = qe.fma(xe, e12);
            o12 = qo.fma(xo, o12);
            xe = FloatVector.fromArray(F, xs, x3 + c);
            xo = FloatVector.fromArray(F, xs, x3 + c + L);
            e03 = pe.fma(xe, e03);
            o03 = po.fma(xo, o03);
            e13 = qe.fma(xe, e13);
            o13 = qo.fma(xo, o13);
        }
        out[t * rows + r] = finish(e00, o00, r, x, x0, vecEnd);
        out[(t + 1) * rows + r] = finish(e01, o01, r, x, x1, vecEnd);
        out[(t + 2) * rows + r] = finish(e02, o02, r, x, x2, vecEnd);
        out[(t + 3) * rows + r] = finish(e03, o03, r, x, x3, vecEnd);
        out[t * rows + r + 1] = finish(e10, o10, r + 1, x, x0, vecEnd);
        out[(t + 1) * rows + r + 1] = finish(e11, o11, r + 1, x, x1, vecEnd);
        out[(t + 2) * rows + r + 1] = finish(e12, o12, r + 1, x, x2, vecEnd);
        out[(t + 3) * rows + r + 1] = finish(e13, o13, r + 1, x, x3, vecEnd);
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
