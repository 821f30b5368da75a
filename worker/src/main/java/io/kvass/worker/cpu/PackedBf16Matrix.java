package io.kvass.worker.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.stream.IntStream;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * bf16 weights stored losslessly in 12 bits each: the low byte as it is, the high byte (sign and top 7 exponent
 * bits) as a 4-bit code into a per-matrix {@link HighByteTable}. Batch-1 decode streams every weight once per
 * token and is bound by memory bandwidth, so 25% fewer bytes is up to 25% less time (docs/benchmarks.md, "CPU:
 * lossless 12-bit packed bf16 weights").
 *
 * <p>Layout: blocks of {@link #BLOCK} = 64 weights in 96 bytes, [64 low bytes in column order][32 code bytes, byte
 * j = code of weight j | code of weight j + 32 << 4], in the column tiles of {@link Bf16Matrix#TILE} that
 * {@link Bf16Matrix} uses (for the same reason: down_proj at one token), the last as wide as the columns left.
 * Columns past the last full block stay bf16 on the heap ({@code tail}), escapes in a per-row sparse list
 * ({@link Escapes}).
 *
 * <p>NOTE: the kernel zero-extends 32 codes to short lanes and looks the high bytes up with one vpermw
 * ({@code selectFrom}) per 32 weights; the table is replicated to 32 entries so the lookup's wrap (index & 31)
 * may keep a bit of the neighbouring nibble. OR'd with the zero-extended low bytes that is 32 bf16 values in
 * place, widened as {@link Bf16Matrix} widens them. Lookups in int lanes (vpermd, 16 weights each) measured
 * 5-10x slower; so the format needs 512-bit vectors ({@link #SUPPORTED}).
 */
final class PackedBf16Matrix implements Matrix {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_512;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    private static final VectorSpecies<Byte> HALF = ByteVector.SPECIES_256;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;

    /**
     * Whether this machine's preferred vectors are the 512 bits the kernel is written for. NOTE: x is split
     * by {@link Bf16Matrix#split} in blocks of {@link Bf16Matrix}'s preferred-species width, which must be
     * this kernel's block: checked below, so a future change of this test cannot silently mismatch them.
     */
    static final boolean SUPPORTED = FloatVector.SPECIES_PREFERRED.vectorBitSize() == 512;
    /** Weights per block (2 short vectors). */
    static final int BLOCK = 2 * S.length();
    static final int BLOCK_BYTES = BLOCK * 3 / 2;
    private static final int BLOCK_SHIFT = Integer.numberOfTrailingZeros(BLOCK);

    static {
        if (SUPPORTED && Bf16Matrix.BLOCK != BLOCK / 2) {
            throw new AssertionError("x is split in blocks of " + Bf16Matrix.BLOCK + "; the packed kernel needs " + BLOCK / 2);
        }
    }
    /** A matrix escaping more of its weights than this stays bf16: the side list would cost more than it saves. */
    static final double MAX_ESCAPE_RATE = 0.01;
    private static final int TILE = Bf16Matrix.TILE;
    /** Per-thread even/odd accumulators of a single token, carried from one tile to the next. */
    private static final ThreadLocal<float[]> ACC = ThreadLocal.withInitial(() -> new float[0]);
    /** Per-thread decoded row for the multi-token kernels. */
    private static final ThreadLocal<int[]> PAIRS = ThreadLocal.withInitial(() -> new int[0]);

    private final MemorySegment data;
    private final int rows;
    private final int cols;
    /** Columns held in blocks: {@code cols} rounded down to {@link #BLOCK}. */
    private final int vecEnd;
    /** {@code [32]}: the table's high bytes shifted into a bf16's top half, twice. */
    private final short[] table;
    /** {@code [rows, cols - vecEnd]}: the bf16 columns past the last block. */
    private final short[] tail;
    private final Escapes escapes;

    private PackedBf16Matrix(MemorySegment data, int rows, int cols, HighByteTable t, short[] tail, Escapes escapes) {
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.vecEnd = cols - cols % BLOCK;
        this.table = new short[S.length()];
        for (int i = 0; i < table.length; i++) {
            table[i] = (short) (t.highBytes()[i % HighByteTable.SIZE] << 8);
        }
        this.tail = tail;
        this.escapes = escapes;
    }

    /**
     * The packed form of the row-major {@code [rows, cols]} bf16 {@code tensor}, placed in {@code memory} (owned by
     * {@code arena}), or {@link Bf16Matrix} when packing does not apply: no 512-bit vectors, fewer columns than a
     * block, or more than {@link #MAX_ESCAPE_RATE} of the weights outside the table. NOTE: rows are encoded in
     * parallel (a 1B model's 1.2 G weights take seconds), so {@code tensor} and {@code arena} must be shared ones.
     */
    static Matrix of(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena) {
        return of(tensor, rows, cols, memory, arena, SUPPORTED);
    }

    /** {@link #of} as on a machine with ({@code supported}) or without 512-bit vectors (tests take both). */
    static Matrix of(MemorySegment tensor, int rows, int cols, CpuWeightMemory memory, Arena arena, boolean supported) {
        // NOTE: the cheap tests first: the table is a full pass over the weights, wasted where nothing packs.
        if (!supported || cols < BLOCK) {
            return new Bf16Matrix(tensor, rows, cols, memory, arena);
        }
        HighByteTable t = HighByteTable.of(tensor, (long) rows * cols);
        if (t.escapeRate() > MAX_ESCAPE_RATE) {
            return new Bf16Matrix(tensor, rows, cols, memory, arena);
        }
        int vecEnd = cols - cols % BLOCK;
        MemorySegment packed = memory.allocate((long) rows * vecEnd / BLOCK * BLOCK_BYTES, arena);
        Escapes.Builder escapes = new Escapes.Builder(rows);
        short[] tail = new short[rows * (cols - vecEnd)];
        IntStream.range(0, rows).parallel().forEach(r -> {
            short[] row = new short[cols];
            MemorySegment.copy(tensor, SHORT, (long) r * cols * Short.BYTES, row, 0, cols);
            byte[] block = new byte[BLOCK_BYTES];
            for (int c = 0; c < vecEnd; c += BLOCK) {
                encode(row, c, t, block, escapes, r);
                MemorySegment.copy(block, 0, packed, BYTE, offset(r, c, rows, vecEnd), BLOCK_BYTES);
            }
            System.arraycopy(row, vecEnd, tail, r * (cols - vecEnd), cols - vecEnd);
        });
        CpuWeightMemory.released(tensor);
        return new PackedBf16Matrix(packed, rows, cols, t, tail, escapes.build());
    }

    /** Block {@code [c, c + BLOCK)} of {@code row} into {@code out}; escapes noted for row {@code r}. */
    private static void encode(short[] row, int c, HighByteTable t, byte[] out, Escapes.Builder escapes, int r) {
        int half = BLOCK / 2;
        Arrays.fill(out, BLOCK, BLOCK_BYTES, (byte) 0);
        for (int j = 0; j < BLOCK; j++) {
            short w = row[c + j];
            int code = t.code(w);
            if (code < 0) {
                escapes.add(r, c + j, w);
                code = HighByteTable.ESCAPE;
                w = 0;
            }
            out[j] = (byte) w;
            out[BLOCK + j % half] |= (byte) (code << (j / half * 4));
        }
    }

    /**
     * Byte offset of the block at column c (a multiple of {@link #BLOCK}) of row r: tile {@code c / TILE} holds
     * {@code rows} rows of its width, row-major, as {@link Bf16Matrix} does; the last tile is only as wide as the
     * columns left, so the blocks fill {@link #data} without padding and the floor pass reads what the kernels do.
     */
    private static long offset(int r, int c, int rows, int vecEnd) {
        int c0 = c & -TILE;
        int stride = Math.min(TILE, vecEnd - c0);
        // NOTE: every term is a multiple of BLOCK (a power of two), so the shift divides exactly (and cheaply).
        return (((long) rows * c0 + (long) r * stride + (c - c0)) >>> BLOCK_SHIFT) * BLOCK_BYTES;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    /** The packed blocks (streamed every step); the heap-side tail and escapes are a rounding error beside them. */
    @Override
    public long byteSize() {
        return (long) rows * vecEnd / BLOCK * BLOCK_BYTES;
    }

    @Override
    public MemorySegment data() {
        return data;
    }

    /** The fraction of weights held in the escape list (for reports and tests). */
    double escapeRate() {
        return (double) escapes.count() / ((long) rows * cols);
    }

    @Override
    public void row(int r, float[] dst, int off) {
        for (int c = 0; c < vecEnd; c++) {
            dst[off + c] = Matrix.Widening.bf16(bits(r, c));
        }
        for (int c = vecEnd; c < cols; c++) {
            dst[off + c] = Matrix.Widening.bf16(tail[r * (cols - vecEnd) + c - vecEnd]);
        }
        escapes.overwrite(r, dst, off);
    }

    /** The stored bits of (r, c), c < vecEnd, escapes decoded as +0.0 (as the kernels see them). */
    short bits(int r, int c) {
        int j = c % BLOCK;
        long o = offset(r, c - j, rows, vecEnd);
        int low = data.get(BYTE, o + j) & 0xFF;
        int code = (data.get(BYTE, o + BLOCK + j % (BLOCK / 2)) >>> (j / (BLOCK / 2) * 4)) & 0xF;
        return (short) (table[code] | low);
    }

    private static FloatVector even(IntVector w) {
        return w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector w) {
        return w.and(0xFFFF0000).reinterpretAsFloats();
    }

    /*
     * NOTE: as in Bf16Matrix, every kernel computes each (row, token) dot in one order (even and odd columns in two
     * accumulators from column 0, summed, reduceLanes, the bf16 tail, then the escapes), so a row's result does not
     * depend on the batch it came in or the thread split.
     */
    @Override
    public void multiply(float[] x, int nTok, float[] out, int r0, int r1) {
        float[] xs = Bf16Matrix.split(x, nTok, cols, vecEnd);
        ShortVector t = ShortVector.fromArray(S, table, 0);
        if (nTok == 1 && vecEnd > TILE) {
            tileByTile(xs, x, t, r0, r1, out);
            return;
        }
        if (nTok == 1) {
            for (int r = r0; r < r1; r++) {
                row(xs, x, t, r, 0, out);
            }
            return;
        }
        int[] pairs = PAIRS.get();
        if (pairs.length < vecEnd / 2) {
            pairs = new int[vecEnd / 2];
            PAIRS.set(pairs);
        }
        for (int r = r0; r < r1; r++) {
            decodeRow(r, t, pairs);
            int k = 0;
            for (; k + 4 <= nTok; k += 4) {
                tokens4(pairs, xs, x, r, k, out);
            }
            for (; k < nTok; k++) {
                token(pairs, xs, x, r, k, out);
            }
        }
    }

    /** Row r times token k, for a matrix of one tile ({@code vecEnd <= TILE}: wider ones go {@link #tileByTile}). */
    private void row(float[] xs, float[] x, ShortVector t, int r, int k, float[] out) {
        int xo = k * cols;
        float[] acc = scratch(2 * F.length());
        accumulate(data, offset(r, 0, rows, vecEnd), vecEnd, xs, xo, t, acc, 0, false);
        out[k * rows + r] = finish(acc, 0, r, xs, x, xo);
    }

    private static ShortVector zext(MemorySegment data, long byteOffset) {
        return (ShortVector) ByteVector.fromMemorySegment(HALF, data, byteOffset, LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
    }

    /**
     * Token 0 times rows {@code [r0, r1)}, one tile at a time for all rows (see {@link Bf16Matrix}); each row's
     * even/odd accumulators wait in scratch between tiles: the same operations as {@link #row}, in the same order.
     */
    private void tileByTile(float[] xs, float[] x, ShortVector t, int r0, int r1, float[] out) {
        int width = 2 * F.length();
        float[] acc = scratch((r1 - r0) * width);
        for (int c0 = 0; c0 < vecEnd; c0 += TILE) {
            int n = Math.min(TILE, vecEnd - c0);
            for (int r = r0, a = 0; r < r1; r++, a += width) {
                accumulate(data, offset(r, c0, rows, vecEnd), n, xs, c0, t, acc, a, c0 > 0);
                if (c0 + n == vecEnd) {
                    out[r] = finish(acc, a, r, xs, x, 0);
                }
            }
        }
    }

    /** This thread's accumulator scratch, at least {@code floats} long. */
    private static float[] scratch(int floats) {
        float[] acc = ACC.get();
        if (acc.length < floats) {
            acc = new float[floats];
            ACC.set(acc);
        }
        return acc;
    }

    /**
     * {@code n} packed weights from byte {@code o} (one tile's row) times {@code xs[xo ..]}: even and odd columns in
     * two accumulators, taken from {@code acc[a ..]} when {@code carry}, and left there. NOTE: static, with
     * everything it reads as arguments, as in bench's PackedGemvProbe: as an instance method reading {@code data}
     * the loop ran at ~70% of the probe's rate (decode step 1.47x its floor instead of ~1.2x).
     */
    private static void accumulate(MemorySegment data, long o, int n, float[] xs, int xo, ShortVector t,
                                   float[] acc, int a, boolean carry) {
        int L = F.length();
        FloatVector even = FloatVector.zero(F), odd = even;
        if (carry) {
            even = FloatVector.fromArray(F, acc, a);
            odd = FloatVector.fromArray(F, acc, a + L);
        }
        for (int c = 0; c < n; c += BLOCK) {
            long b = o + (c >> 1) * 3L;
            ShortVector lowA = zext(data, b), lowB = zext(data, b + BLOCK / 2), codes = zext(data, b + BLOCK);
            IntVector pa = codes.selectFrom(t).or(lowA).reinterpretAsInts();
            IntVector pb = codes.lanewise(VectorOperators.LSHR, 4).selectFrom(t).or(lowB).reinterpretAsInts();
            even = even(pa).fma(FloatVector.fromArray(F, xs, xo + c), even);
            odd = odd(pa).fma(FloatVector.fromArray(F, xs, xo + c + L), odd);
            even = even(pb).fma(FloatVector.fromArray(F, xs, xo + c + 2 * L), even);
            odd = odd(pb).fma(FloatVector.fromArray(F, xs, xo + c + 3 * L), odd);
        }
        even.intoArray(acc, a);
        odd.intoArray(acc, a + L);
    }

    /**
     * Row r decoded into {@code pairs} as {@link Bf16Matrix} stores weights (int j = columns 2j, 2j + 1), for
     * the multi-token kernels. NOTE: decoding in the token loop itself (one block for four tokens) ran 4x slower
     * than bf16 (C2 kept the decoded vectors in memory); decoding a row once into L1 for all tokens runs batches
     * at 0.85-0.93x of bf16's rate.
     */
    private void decodeRow(int r, ShortVector t, int[] pairs) {
        for (int c0 = 0; c0 < vecEnd; c0 += TILE) {
            decode(data, offset(r, c0, rows, vecEnd), Math.min(TILE, vecEnd - c0), t, pairs, c0 / 2);
        }
    }

    /** {@code n} packed weights from byte {@code o} into {@code pairs[p ..]}, two per int. */
    private static void decode(MemorySegment data, long o, int n, ShortVector t, int[] pairs, int p) {
        int half = S.length() / 2;
        for (int c = 0; c < n; c += BLOCK) {
            long b = o + (c >> 1) * 3L;
            ShortVector lowA = zext(data, b), lowB = zext(data, b + BLOCK / 2), codes = zext(data, b + BLOCK);
            codes.selectFrom(t).or(lowA).reinterpretAsInts().intoArray(pairs, p + c / 2);
            codes.lanewise(VectorOperators.LSHR, 4).selectFrom(t).or(lowB).reinterpretAsInts()
                    .intoArray(pairs, p + c / 2 + half);
        }
    }

    /** Decoded row ({@code pairs}) times tokens {@code [k, k + 4)}; accumulators named by token, even/odd. */
    private void tokens4(int[] pairs, float[] xs, float[] x, int r, int k, float[] out) {
        int L = F.length();
        int x0 = k * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        for (int c = 0; c < vecEnd; c += 2 * L) {
            IntVector p = IntVector.fromArray(I, pairs, c / 2);
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
        out[k * rows + r] = finish(e0, o0, r, xs, x, x0);
        out[(k + 1) * rows + r] = finish(e1, o1, r, xs, x, x1);
        out[(k + 2) * rows + r] = finish(e2, o2, r, xs, x, x2);
        out[(k + 3) * rows + r] = finish(e3, o3, r, xs, x, x3);
    }

    /** Decoded row ({@code pairs}) times token k. */
    private void token(int[] pairs, float[] xs, float[] x, int r, int k, float[] out) {
        int L = F.length();
        int xo = k * cols;
        FloatVector even = FloatVector.zero(F), odd = even;
        for (int c = 0; c < vecEnd; c += 2 * L) {
            IntVector p = IntVector.fromArray(I, pairs, c / 2);
            even = even(p).fma(FloatVector.fromArray(F, xs, xo + c), even);
            odd = odd(p).fma(FloatVector.fromArray(F, xs, xo + c + L), odd);
        }
        out[k * rows + r] = finish(even, odd, r, xs, x, xo);
    }

    /** The even/odd accumulators that {@link #accumulate} left in {@code acc[a ..]}, finished. */
    private float finish(float[] acc, int a, int r, float[] xs, float[] x, int xOff) {
        return finish(FloatVector.fromArray(F, acc, a), FloatVector.fromArray(F, acc, a + F.length()), r, xs, x, xOff);
    }

    /** The lanes' sum, plus the bf16 tail columns (in place in xs), plus the escapes' products (x as given). */
    private float finish(FloatVector even, FloatVector odd, int r, float[] xs, float[] x, int xOff) {
        float s = even.add(odd).reduceLanes(VectorOperators.ADD);
        int tailWidth = cols - vecEnd;
        for (int c = vecEnd; c < cols; c++) {
            s += Matrix.Widening.bf16(tail[r * tailWidth + c - vecEnd]) * xs[xOff + c];
        }
        return escapes.addTo(s, r, x, xOff);
    }
}
