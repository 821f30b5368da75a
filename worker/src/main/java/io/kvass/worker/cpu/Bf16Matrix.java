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
 * every row, row-major. A matrix no wider than a tile is the mapped tensor itself; a wider one (down_proj)
 * is copied once into this layout at load.
 */
final class Bf16Matrix implements Matrix {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** bf16 columns per weight load: one int vector of F's shape holds two per lane. */
    private static final int BLOCK = 2 * F.length();
    /**
     * Columns per tile. NOTE: with 8192-column rows (down_proj) a single token's x (32 KB, 64 KB split
     * into even/odd) does not stay in L1 next to the weight stream, and down_proj ran at 1.7x the read
     * floor; reading 2048-column rows of a tile at a time runs it at the floor (1.00x), as the 2048-wide
     * matrices do. Walking the row-major tensor 2048 columns at a time instead (4 KB runs, 16 KB apart)
     * read even slower (1.9x): the tiles must be contiguous in memory.
     */
    static final int TILE = 2048;
    /** Per-thread scratch for split x, reused across calls. */
    private static final ThreadLocal<float[]> SPLIT = ThreadLocal.withInitial(() -> new float[0]);
    /** Per-thread even/odd accumulators carried from one tile to the next, reused across calls. */
    private static final ThreadLocal<float[]> ACC = ThreadLocal.withInitial(() -> new float[0]);

    private final MemorySegment data;
    private final int rows;
    private final int cols;

    /** {@code tensor}: the row-major {@code [rows, cols]} bf16 data; copied into {@code arena} when tiled. */
    Bf16Matrix(MemorySegment tensor, int rows, int cols, Arena arena) {
        this.rows = rows;
        this.cols = cols;
        this.data = cols <= TILE ? tensor : tile(tensor, rows, cols, arena);
    }

    private static MemorySegment tile(MemorySegment tensor, int rows, int cols, Arena arena) {
        MemorySegment tiled = arena.allocate((long) rows * cols * Short.BYTES, 64);
        for (int c0 = 0; c0 < cols; c0 += TILE) {
            int width = Math.min(TILE, cols - c0);
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(tensor, ((long) r * cols + c0) * Short.BYTES,
                        tiled, ((long) rows * c0 + (long) r * width) * Short.BYTES, (long) width * Short.BYTES);
            }
        }
        return tiled;
    }

    /** Element index of (r, c) in the tiled layout. */
    private long index(int r, int c) {
        int c0 = c - c % TILE;
        return (long) rows * c0 + (long) r * Math.min(TILE, cols - c0) + (c - c0);
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
     * Between tiles the accumulators wait in scratch, which changes no operation.
     */
    @Override
    public void multiply(float[] x, int nTok, float[] out, int r0, int r1) {
        int vecEnd = cols - cols % BLOCK;
        float[] xs = split(x, nTok, vecEnd);
        float[] acc = cols <= TILE ? null : accumulators((r1 - r0) * nTok * BLOCK);
        for (int c0 = 0; c0 < cols; c0 += TILE) {
            Tile tile = new Tile(c0, Math.min(c0 + TILE, cols), vecEnd);
            // NOTE: four tokens share each weight load; the row stays in L1 across token groups, so weights
            // are streamed from memory once. Decode is memory bound: one sequential stream per thread
            // measured faster here than two to four rows at once.
            for (int r = r0; r < r1; r++) {
                long w = (index(r, c0) - c0) * Short.BYTES; // + 2c addresses column c of this tile
                int a = (r - r0) * nTok * BLOCK;
                int t = 0;
                for (; t + 4 <= nTok; t += 4) {
                    row1tokens4(tile, xs, x, w, r, t, acc, a + t * BLOCK, out);
                }
                for (; t < nTok; t++) {
                    row(tile, xs, x, w, r, t, acc, a + t * BLOCK, out);
                }
            }
        }
    }

    /** Columns {@code [c0, c1)} of the matrix; its vector blocks end at {@code min(c1, vecEnd)}. */
    private record Tile(int c0, int c1, int vecEnd) {
        boolean first() {
            return c0 == 0;
        }

        boolean last(int cols) {
            return c1 == cols;
        }

        int blocksEnd() {
            return Math.min(c1, vecEnd);
        }
    }

    private static float[] accumulators(int size) {
        float[] acc = ACC.get();
        if (acc.length < size) {
            acc = new float[size];
            ACC.set(acc);
        }
        return acc;
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

    /** Row r times token t over one tile: the dot if the tile is the last, else its accumulators saved at a. */
    private void row(Tile tile, float[] xs, float[] x, long w, int r, int t, float[] acc, int a, float[] out) {
        int L = F.length();
        int xo = t * cols;
        FloatVector even = start(tile, acc, a), odd = start(tile, acc, a + L);
        for (int c = tile.c0(), end = tile.blocksEnd(); c < end; c += BLOCK) {
            IntVector p = load(w + (long) c * Short.BYTES);
            even = even(p).fma(FloatVector.fromArray(F, xs, xo + c), even);
            odd = odd(p).fma(FloatVector.fromArray(F, xs, xo + c + L), odd);
        }
        if (tile.last(cols)) {
            out[t * rows + r] = finish(even, odd, r, x, xo, tile.vecEnd());
        } else {
            even.intoArray(acc, a);
            odd.intoArray(acc, a + L);
        }
    }

    /** Row r times tokens {@code [t, t + 4)} over one tile; accumulators named by token, even/odd. */
    private void row1tokens4(Tile tile, float[] xs, float[] x, long w, int r, int t, float[] acc, int a, float[] out) {
        int L = F.length();
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector e0 = start(tile, acc, a), o0 = start(tile, acc, a + L);
        FloatVector e1 = start(tile, acc, a + BLOCK), o1 = start(tile, acc, a + BLOCK + L);
        FloatVector e2 = start(tile, acc, a + 2 * BLOCK), o2 = start(tile, acc, a + 2 * BLOCK + L);
        FloatVector e3 = start(tile, acc, a + 3 * BLOCK), o3 = start(tile, acc, a + 3 * BLOCK + L);
        for (int c = tile.c0(), end = tile.blocksEnd(); c < end; c += BLOCK) {
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
        if (tile.last(cols)) {
            out[t * rows + r] = finish(e0, o0, r, x, x0, tile.vecEnd());
            out[(t + 1) * rows + r] = finish(e1, o1, r, x, x1, tile.vecEnd());
            out[(t + 2) * rows + r] = finish(e2, o2, r, x, x2, tile.vecEnd());
            out[(t + 3) * rows + r] = finish(e3, o3, r, x, x3, tile.vecEnd());
        } else {
            e0.intoArray(acc, a);
            o0.intoArray(acc, a + L);
            e1.intoArray(acc, a + BLOCK);
            o1.intoArray(acc, a + BLOCK + L);
            e2.intoArray(acc, a + 2 * BLOCK);
            o2.intoArray(acc, a + 2 * BLOCK + L);
            e3.intoArray(acc, a + 3 * BLOCK);
            o3.intoArray(acc, a + 3 * BLOCK + L);
        }
    }

    /** An accumulator's value before a tile: zero before the first, else where the previous tile left it. */
    private static FloatVector start(Tile tile, float[] acc, int a) {
        return tile.first() ? FloatVector.zero(F) : FloatVector.fromArray(F, acc, a);
    }

    /** The lanes' sum plus the columns past the last full block. */
    private float finish(FloatVector even, FloatVector odd, int r, float[] x, int xOff, int vecEnd) {
        float s = even.add(odd).reduceLanes(VectorOperators.ADD);
        for (int c = vecEnd; c < cols; c++) {
            s += scalar(index(r, c)) * x[xOff + c];
        }
        return s;
    }
}
