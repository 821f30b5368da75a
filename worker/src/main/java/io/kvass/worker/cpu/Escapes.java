package io.kvass.worker.cpu;

import java.util.Arrays;

/**
 * The weights of a {@link PackedBf16Matrix} whose high byte is not in its table, row by row (compressed sparse
 * rows): the packed data holds +0.0 in their place, so adding {@code w * x[col]} after the dot restores the
 * exact product. Kept on the heap: at ~1e-4 of the weights they are not worth streaming with the blocks.
 */
final class Escapes {
    /** {@code [rows + 1]}: row r's escapes are {@code [start[r], start[r + 1])}. */
    private final int[] start;
    private final int[] col;
    private final float[] value;

    private Escapes(int[] start, int[] col, float[] value) {
        this.start = start;
        this.col = col;
        this.value = value;
    }

    int count() {
        return col.length;
    }

    /** {@code s} plus row r's escaped weights times {@code x[xOff + col]}, in column order. */
    float addTo(float s, int r, float[] x, int xOff) {
        for (int i = start[r], end = start[r + 1]; i < end; i++) {
            s += value[i] * x[xOff + col[i]];
        }
        return s;
    }

    /** Writes row r's escaped weights over their +0.0 placeholders in {@code dst[off ..]}. */
    void overwrite(int r, float[] dst, int off) {
        for (int i = start[r], end = start[r + 1]; i < end; i++) {
            dst[off + col[i]] = value[i];
        }
    }

    /**
     * Collects escapes while rows are encoded in parallel. NOTE: each row is encoded by one thread, so the
     * per-row lists need no lock; the parallel stream's completion publishes them to {@link #build}.
     */
    static final class Builder {
        private final int[][] cols;
        private final short[][] bits;
        private final int[] counts;

        Builder(int rows) {
            cols = new int[rows][];
            bits = new short[rows][];
            counts = new int[rows];
        }

        void add(int r, int c, short bf16) {
            int n = counts[r];
            if (cols[r] == null) {
                cols[r] = new int[4];
                bits[r] = new short[4];
            } else if (n == cols[r].length) {
                cols[r] = Arrays.copyOf(cols[r], 2 * n);
                bits[r] = Arrays.copyOf(bits[r], 2 * n);
            }
            cols[r][n] = c;
            bits[r][n] = bf16;
            counts[r] = n + 1;
        }

        Escapes build() {
            int[] start = new int[counts.length + 1];
            for (int r = 0; r < counts.length; r++) {
                start[r + 1] = start[r] + counts[r];
            }
            int[] col = new int[start[counts.length]];
            float[] value = new float[col.length];
            for (int r = 0; r < counts.length; r++) {
                for (int i = 0; i < counts[r]; i++) {
                    col[start[r] + i] = cols[r][i];
                    value[start[r] + i] = Matrix.Widening.bf16(bits[r][i]);
                }
            }
            return new Escapes(start, col, value);
        }
    }
}
