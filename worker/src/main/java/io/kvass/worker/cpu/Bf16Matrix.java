package io.kvass.worker.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * bf16 weights, widened to fp32 by a 16-bit shift (or mask) inside the kernel.
 *
 * <p>Stored in column tiles of {@link #TILE}: tile {@code k} holds columns {@code [k TILE, (k + 1) TILE)} of
 * every row, row-major, each row {@code TILE} wide (the last tile zero-padded). A matrix no wider than a
 * tile is the mapped tensor itself; a wider one (down_proj) is copied once into this layout at load.
 */
final class Bf16Matrix implements Matrix {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** bf16 columns per weight load: one int vector of F's shape holds two per lane. */
    static final int BLOCK = 2 * F.length();
    /**
     * Columns per tile (a power of two). NOTE: with 8192-column rows (down_proj) a single token's x
     * (32 KB of fp32) does not stay in L1 next to the weight stream, and down_proj ran at 1.7x the read
     * floor; a single token now reads all rows of one tile, then the next, and runs at the floor (1.00x)
     * like the 2048-wide matrices. Walking the row-major tensor 2048 columns at a time instead (4 KB runs,
     * 16 KB apart) read even slower (1.9x): the tiles must be contiguous in memory. Several tokens are
     * compute bound and walk each row through its tiles, accumulators in registers.
     */
    static final int TILE = 2048;
    /** Per-thread scratch for split x, reused across calls. */
    private static final ThreadLocal<float[]> SPLIT = ThreadLocal.withInitial(() -> new float[0]);
    /** Per-thread even/odd accumulators of a single token carried from one tile to the next, reused across calls. */
    private static final ThreadLocal<float[]> ACC = ThreadLocal.withInitial(() -> new float[0]);

    private final MemorySegment data;
    private final int rows;
    private final int cols;
    /** Elements from one row of a tile to the next. */
    private final int stride;

    /**
     * {@code tensor}: the row-major {@code [rows, cols]} bf16 data, placed in {@code memory} (owned by
     * {@code arena}); always copied when tiled.
     */
    Bf16Matrix(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena) {
        this.rows = rows;
        this.cols = cols;
        this.stride = Math.min(cols, TILE);
        this.data = cols <= TILE ? memory.place(tensor, arena) : tile(tensor, rows, cols, memory, arena);
    }

    private static MemorySegment tile(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena) {
        long tiles = Math.ceilDiv(cols, TILE);
        MemorySegment tiled = memory.allocate(tiles * rows * TILE * Short.BYTES, arena);
        for (int c0 = 0; c0 < cols; c0 += TILE) {
            int width = Math.min(TILE, cols - c0);
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(tensor, ((long) r * cols + c0) * Short.BYTES,
                        tiled, ((long) rows * c0 + (long) r * TILE) * Short.BYTES, (long) width * Short.BYTES);
            }
        }
        CpuWeightMemory.released(tensor);
        return tiled;
    }

    /**
     * Element index of (r, c): {@code rows * c0 + r * stride + (c - c0)} for the tile starting at column
     * {@code c0 = c & -TILE}, written so that a kernel's flat loop over c needs no per-tile loop (nested
     * loops of 64 blocks ran the multi-token kernel 1.5x slower).
     */
    private long index(int r, int c) {
        return (long) r * stride + c + (long) (c & -TILE) * (rows - 1);
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
    public MemorySegment data() {
        return data;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        for (int c = 0; c < cols; c++) {
            dst[off + c] = scalar(index(r, c));
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
     * NOTE: every kernel computes each (row, token) dot in the same order (even and odd columns in two
     * accumulators, block after block from column 0, summed, reduceLanes, then the scalar tail), so a
     * row's result does not depend on the tiling, the blocking, the batch it came in, or the thread split.
     */
    @Override
    public void multiply(float[] x, int nTok, float[] out, int r0, int r1) {
        int vecEnd = cols - cols % BLOCK;
        float[] xs = split(x, nTok, cols, vecEnd);
        if (nTok == 1 && cols > TILE) {
            tileByTile(xs, vecEnd, r0, r1, out);
            return;
        }
        // NOTE: four tokens share each weight load; the row stays in L1 across token groups, so weights
        // are streamed from memory once. Decode is memory bound: one sequential stream per thread
        // measured faster here than two to four rows at once.
        for (int r = r0; r < r1; r++) {
            int t = 0;
            for (; t + 4 <= nTok; t += 4) {
                row1tokens4(xs, vecEnd, r, t, out);
            }
            for (; t < nTok; t++) {
                row(xs, vecEnd, r, t, out);
            }
        }
    }

    /** Byte offset that, plus {@code 2c}, addresses column c of row r, for c in the tile starting at c0. */
    private long rowInTile(int r, int c0) {
        return (index(r, c0) - c0) * Short.BYTES;
    }

    /**
     * x ({@code [nTok, cols]}) with each block of {@code BLOCK} columns below {@code vecEnd} reordered to [even
     * columns, odd columns], the columns past it copied as they are; in per-thread scratch reused across calls.
     */
    static float[] split(float[] x, int nTok, int cols, int vecEnd) {
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
            System.arraycopy(x, base + vecEnd, xs, base + vecEnd, cols - vecEnd);
        }
        return xs;
    }

    /** Row r times token t. */
    private void row(float[] xs, int vecEnd, int r, int t, float[] out) {
        int L = F.length();
        int xo = t * cols;
        long w = (long) r * stride * Short.BYTES, skip = (long) (rows - 1) * Short.BYTES;
        FloatVector even = FloatVector.zero(F), odd = even;
        for (int c = 0; c < vecEnd; c += BLOCK) {
            IntVector p = load(w + (long) c * Short.BYTES + (c & -TILE) * skip);
            even = even(p).fma(FloatVector.fromArray(F, xs, xo + c), even);
            odd = odd(p).fma(FloatVector.fromArray(F, xs, xo + c + L), odd);
        }
        out[t * rows + r] = finish(even, odd, r, xs, xo, vecEnd);
    }

    /**
     * Token 0 times rows {@code [r0, r1)}, one tile at a time for all rows, so that only the tile's slice
     * of x needs to stay in L1. Each row's accumulators wait in scratch between tiles, which changes no
     * operation: the result is {@link #row}'s, bit for bit.
     */
    private void tileByTile(float[] xs, int vecEnd, int r0, int r1, float[] out) {
        int L = F.length();
        float[] acc = ACC.get();
        if (acc.length < (r1 - r0) * BLOCK) {
            acc = new float[(r1 - r0) * BLOCK];
            ACC.set(acc);
        }
        for (int c0 = 0; c0 < vecEnd; c0 += TILE) {
            int end = Math.min(c0 + TILE, vecEnd);
            for (int r = r0, a = 0; r < r1; r++, a += BLOCK) {
                long w = rowInTile(r, c0);
                FloatVector even = FloatVector.zero(F), odd = even;
                if (c0 > 0) {
                    even = FloatVector.fromArray(F, acc, a);
                    odd = FloatVector.fromArray(F, acc, a + L);
                }
                for (int c = c0; c < end; c += BLOCK) {
                    IntVector p = load(w + (long) c * Short.BYTES);
                    even = even(p).fma(FloatVector.fromArray(F, xs, c), even);
                    odd = odd(p).fma(FloatVector.fromArray(F, xs, c + L), odd);
                }
                if (end == vecEnd) {
                    out[r] = finish(even, odd, r, xs, 0, vecEnd);
                } else {
                    even.intoArray(acc, a);
                    odd.intoArray(acc, a + L);
                }
            }
        }
    }

    /** Row r times tokens {@code [t, t + 4)}; accumulators named by token, even/odd. */
    private void row1tokens4(float[] xs, int vecEnd, int r, int t, float[] out) {
        int L = F.length();
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        long w = (long) r * stride * Short.BYTES, skip = (long) (rows - 1) * Short.BYTES;
        for (int c = 0; c < vecEnd; c += BLOCK) {
            IntVector p = load(w + (long) c * Short.BYTES + (c & -TILE) * skip);
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
        out[t * rows + r] = finish(e0, o0, r, xs, x0, vecEnd);
        out[(t + 1) * rows + r] = finish(e1, o1, r, xs, x1, vecEnd);
        out[(t + 2) * rows + r] = finish(e2, o2, r, xs, x2, vecEnd);
        out[(t + 3) * rows + r] = finish(e3, o3, r, xs, x3, vecEnd);
    }

    /** The lanes' sum plus the columns past the last full block (kept in place in xs by split). */
    private float finish(FloatVector even, FloatVector odd, int r, float[] xs, int xOff, int vecEnd) {
        float s = even.add(odd).reduceLanes(VectorOperators.ADD);
        for (int c = vecEnd; c < cols; c++) {
            s += scalar(index(r, c)) * xs[xOff + c];
        }
        return s;
    }
}
