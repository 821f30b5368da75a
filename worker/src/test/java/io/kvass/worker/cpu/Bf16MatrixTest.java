package io.kvass.worker.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The bf16 kernels on a matrix wider than a tile, with a column tail that fills no vector block. */
class Bf16MatrixTest {
    private static final int ROWS = 7;
    private static final int COLS = 2 * Bf16Matrix.TILE + 40;

    @Test
    void tiledMatrixMatchesTheRowMajorTensor() {
        Random random = new Random(3);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment tensor = arena.allocate((long) ROWS * COLS * Short.BYTES);
            for (long i = 0; i < (long) ROWS * COLS; i++) {
                tensor.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                        (short) (Float.floatToRawIntBits((float) random.nextGaussian()) >>> 16));
            }
            Bf16Matrix m = new Bf16Matrix(tensor, ROWS, COLS, CpuWeightMemory.MMAP, arena);
            float[] row = new float[COLS];
            for (int r = 0; r < ROWS; r++) {
                m.row(r, row, 0);
                for (int c = 0; c < COLS; c++) {
                    short bits = tensor.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, (long) r * COLS + c);
                    assertEquals(Matrix.Widening.bf16(bits), row[c]);
                }
            }

            int nTok = 6;
            float[] x = new float[nTok * COLS];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            float[] all = new float[nTok * ROWS];
            m.multiply(x, nTok, all, 0, ROWS);
            for (int t = 0; t < nTok; t++) {
                // Alone and in two ranges of rows (the 1-token kernel, accumulators parked at an offset).
                float[] xt = Arrays.copyOfRange(x, t * COLS, (t + 1) * COLS);
                float[] solo = new float[ROWS];
                m.multiply(xt, 1, solo, 0, 3);
                m.multiply(xt, 1, solo, 3, ROWS);
                for (int r = 0; r < ROWS; r++) {
                    m.row(r, row, 0);
                    double dot = 0;
                    for (int c = 0; c < COLS; c++) {
                        dot += (double) row[c] * xt[c];
                    }
                    assertEquals(dot, all[t * ROWS + r], 1e-3, "token " + t + " of the batch, row " + r);
                    assertEquals(dot, solo[r], 1e-3, "token " + t + " alone, row " + r);
                }
            }
        }
    }
}
