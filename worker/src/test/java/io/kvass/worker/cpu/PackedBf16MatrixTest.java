package io.kvass.worker.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** Packed weights decode to the stored bf16 bits, multiply as bf16 does, and fall back when they cannot pack. */
class PackedBf16MatrixTest {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final int TILE = Bf16Matrix.TILE;

    /** The kernels' tests; the fallback rules are tested everywhere. */
    private static void needs512BitVectors() {
        assumeTrue(PackedBf16Matrix.SUPPORTED, "the packed kernel needs 512-bit vectors");
    }

    /**
     * N(0, 0.02) weights with outliers the table cannot hold (escapes), zeros, -0.0, subnormals and, when
     * {@code special}, NaN and infinities every few hundred weights.
     */
    private static MemorySegment weights(Arena arena, int rows, int cols, long seed, boolean special) {
        Random random = new Random(seed);
        MemorySegment t = arena.allocate((long) rows * cols * Short.BYTES);
        short[] odd = special
                ? new short[] {0, (short) 0x8000, 0x0001, (short) 0x8042, 0x7F80, (short) 0xFF80, 0x7FC0, 0x7FC1}
                : new short[] {0, (short) 0x8000, 0x0001, (short) 0x8042};
        for (long i = 0; i < (long) rows * cols; i++) {
            float v = (float) (0.02 * random.nextGaussian());
            short bits = (short) (Float.floatToRawIntBits(v) >>> 16);
            int pick = random.nextInt(400);
            if (pick == 0) {
                bits = (short) (Float.floatToRawIntBits((float) (random.nextGaussian() * 1e3)) >>> 16);
            } else if (pick == 1) {
                bits = (short) (Float.floatToRawIntBits((float) (random.nextGaussian() * 1e-12)) >>> 16);
            } else if (pick == 2) {
                bits = odd[random.nextInt(odd.length)];
            }
            t.setAtIndex(SHORT, i, bits);
        }
        return t;
    }

    private static PackedBf16Matrix packed(MemorySegment t, int rows, int cols, Arena arena) {
        return assertInstanceOf(PackedBf16Matrix.class, PackedBf16Matrix.of(t, rows, cols, CpuWeightMemory.MMAP, arena));
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"9, 64", "5, 200", "7, 4136", "3, 6144", "4, 2240", "2, 130"})
    void everyWeightDecodesToItsBf16Bits(int rows, int cols) {
        needs512BitVectors();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, rows, cols, rows * 31L + cols, true);
            PackedBf16Matrix m = packed(t, rows, cols, arena);
            assertTrue(m.escapeRate() < PackedBf16Matrix.MAX_ESCAPE_RATE, "rate " + m.escapeRate());
            // A small matrix may hold all its high bytes in the table; the larger ones must exercise escapes.
            assertTrue(rows * cols < 4000 || m.escapeRate() > 0, "no escapes to check");
            float[] row = new float[cols + 3];
            for (int r = 0; r < rows; r++) {
                m.row(r, row, 3);
                for (int c = 0; c < cols; c++) {
                    int expected = t.getAtIndex(SHORT, (long) r * cols + c) << 16;
                    assertEquals(expected, Float.floatToRawIntBits(row[3 + c]), "(" + r + ", " + c + ")");
                }
            }
            assertEquals((long) rows * (cols - cols % PackedBf16Matrix.BLOCK) * 3 / 2, m.byteSize());
        }
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"9, 64", "5, 200", "7, 4136", "6, 6144", "4, 2240"})
    void multiplyMatchesADoubleReference(int rows, int cols) {
        needs512BitVectors();
        Random random = new Random(11);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, rows, cols, rows * 7L + cols, false);
            PackedBf16Matrix m = packed(t, rows, cols, arena);
            for (int nTok : new int[] {1, 2, 5, 16}) {
                float[] x = new float[nTok * cols];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) random.nextGaussian();
                }
                float[] all = new float[nTok * rows];
                int split = rows / 3;
                m.multiply(x, nTok, all, 0, split);
                m.multiply(x, nTok, all, split, rows);
                for (int k = 0; k < nTok; k++) {
                    float[] xk = Arrays.copyOfRange(x, k * cols, (k + 1) * cols);
                    float[] solo = new float[rows];
                    m.multiply(xk, 1, solo, 0, rows);
                    for (int r = 0; r < rows; r++) {
                        double dot = 0, magnitude = 0;
                        for (int c = 0; c < cols; c++) {
                            double w = Matrix.Widening.bf16(t.getAtIndex(SHORT, (long) r * cols + c));
                            dot += w * xk[c];
                            magnitude += Math.abs(w * xk[c]);
                        }
                        String where = nTok + " tokens, token " + k + ", row " + r;
                        assertEquals(dot, all[k * rows + r], 1e-6 * magnitude + 1e-6, where);
                        // NOTE: not bit for bit: reduceLanes adds the lanes in another order before C2 compiles
                        // it (see CpuWeightMemoryTest), and this small test runs partly interpreted.
                        assertEquals(solo[r], all[k * rows + r], 1e-6 * magnitude + 1e-6, where + " alone");
                    }
                }
            }
        }
    }

    @Test
    void aMatrixOfManyExponentsStaysBf16() {
        int rows = 4, cols = 256;
        Random random = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = arena.allocate((long) rows * cols * Short.BYTES);
            for (long i = 0; i < (long) rows * cols; i++) {
                float v = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(-60, 60)));
                t.setAtIndex(SHORT, i, (short) (Float.floatToRawIntBits(v) >>> 16));
            }
            HighByteTable table = HighByteTable.of(t, (long) rows * cols);
            assertTrue(table.escapeRate() > PackedBf16Matrix.MAX_ESCAPE_RATE, "rate " + table.escapeRate());
            assertInstanceOf(Bf16Matrix.class,
                    PackedBf16Matrix.of(t, rows, cols, CpuWeightMemory.MMAP, arena, true));
        }
    }

    @Test
    void withoutWideVectorsEveryMatrixStaysBf16() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, 4, 256, 3, false);
            assertInstanceOf(Bf16Matrix.class, PackedBf16Matrix.of(t, 4, 256, CpuWeightMemory.MMAP, arena, false));
        }
    }

    /**
     * One-hot x: every (token, column) reads exactly one weight, so each output must carry that weight's exact
     * bits through whichever kernel runs (one token in one tile, tile by tile, the decoded row for 3, 4 and 9
     * tokens), with the rows split in two ranges as the threads split them.
     */
    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"5, 64", "3, 127", "4, 2047", "3, 2112", "2, 4160", "2, 6200"})
    void everyKernelPassesEveryWeightExactly(int rows, int cols) {
        needs512BitVectors();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, rows, cols, rows * 1000L + cols, false);
            PackedBf16Matrix m = packed(t, rows, cols, arena);
            for (int nTok : new int[] {1, 3, 4, 9}) {
                for (int c0 = 0; c0 < cols; c0 += nTok) {
                    float[] x = new float[nTok * cols];
                    for (int k = 0; k < nTok; k++) {
                        x[k * cols + (c0 + 7 * k) % cols] = 1f;
                    }
                    float[] out = new float[nTok * rows];
                    m.multiply(x, nTok, out, 0, rows / 2);
                    m.multiply(x, nTok, out, rows / 2, rows);
                    for (int k = 0; k < nTok; k++) {
                        int c = (c0 + 7 * k) % cols;
                        for (int r = 0; r < rows; r++) {
                            float w = Matrix.Widening.bf16(t.getAtIndex(SHORT, (long) r * cols + c));
                            float got = out[k * rows + r];
                            // NOTE: -0.0 * 1 summed onto +0.0 is +0.0, so zeros compare as zeros.
                            assertEquals(w == 0 ? 0 : Float.floatToRawIntBits(w), got == 0 ? 0 : Float.floatToRawIntBits(got),
                                    nTok + " tokens, token " + k + ", row " + r + ", column " + c);
                        }
                    }
                }
            }
        }
    }

    @Test
    void aMatrixNarrowerThanABlockStaysBf16() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, 3, PackedBf16Matrix.BLOCK - 1, 1, false);
            assertInstanceOf(Bf16Matrix.class,
                    PackedBf16Matrix.of(t, 3, PackedBf16Matrix.BLOCK - 1, CpuWeightMemory.MMAP, arena, true));
        }
    }

    @Test
    void theTableHoldsZeroAtTheEscapeCodeAndTheMostFrequentHighBytes() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment t = weights(arena, 8, TILE, 2, false);
            HighByteTable table = HighByteTable.of(t, 8L * TILE);
            assertEquals(0, table.highBytes()[HighByteTable.ESCAPE]);
            assertEquals(HighByteTable.ESCAPE, table.code((short) 0x0001));
            assertEquals(-1, table.code((short) 0x4480), "1024.0 is no N(0, 0.02) weight");
            assertTrue(table.code((short) (Float.floatToRawIntBits(0.02f) >>> 16)) > 0);
        }
    }

    @Test
    void formatNamesParseAsTheFlagWritesThem() {
        assertEquals(CpuWeightFormat.PACKED, CpuWeightFormat.parse("Packed"));
        assertEquals(CpuWeightFormat.BF16, CpuWeightFormat.parse("bf16"));
        assertThrows(IllegalArgumentException.class, () -> CpuWeightFormat.parse("q8"));
    }
}
