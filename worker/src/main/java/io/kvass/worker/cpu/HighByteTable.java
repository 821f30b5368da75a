package io.kvass.worker.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * The 16 high bytes (sign and top 7 exponent bits) of a bf16 matrix that {@link PackedBf16Matrix} codes in 4 bits:
 * {@code 0x00} at code {@link #ESCAPE} and the 15 most frequent others. A weight whose high byte is not in the table
 * is an escape: stored as code {@link #ESCAPE} with low byte 0 (exactly +0.0) and corrected from a side list.
 *
 * <p>NOTE: the exponent of trained (and of N(0, σ)) weights spans few values: 15 high bytes cover all but ~1e-4
 * of a Gaussian matrix, so 12 bits per weight (low byte + code) hold every weight bit for bit.
 */
record HighByteTable(int[] highBytes, int[] codes, long escapes, long count) {
    /** The code of high byte 0x00: an escape decodes to +0.0 through it. */
    static final int ESCAPE = 0;
    static final int SIZE = 16;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** The table for the {@code count} bf16 values of {@code data}, and how many of them it would escape. */
    static HighByteTable of(MemorySegment data, long count) {
        int chunks = (int) Math.min(64, Math.max(1, count >> 20));
        long[] hist = IntStream.range(0, chunks).parallel().mapToObj(k -> {
            long[] h = new long[256];
            for (long i = count * k / chunks, end = count * (k + 1) / chunks; i < end; i++) {
                h[(data.getAtIndex(SHORT, i) >>> 8) & 0xFF]++;
            }
            return h;
        }).reduce(new long[256], (a, b) -> {
            long[] s = a.clone();
            Arrays.setAll(s, i -> a[i] + b[i]);
            return s;
        });
        // 0x00 first, then by falling frequency (ties by value, so the table is deterministic).
        int[] byFrequency = IntStream.range(1, 256).boxed()
                .sorted((a, b) -> hist[a] != hist[b] ? Long.compare(hist[b], hist[a]) : Integer.compare(a, b))
                .mapToInt(Integer::intValue).limit(SIZE - 1).toArray();
        int[] highBytes = new int[SIZE];
        int[] codes = new int[256];
        Arrays.fill(codes, -1);
        codes[0] = ESCAPE;
        long covered = hist[0];
        for (int k = 1; k < SIZE; k++) {
            highBytes[k] = byFrequency[k - 1];
            codes[highBytes[k]] = k;
            covered += hist[highBytes[k]];
        }
        return new HighByteTable(highBytes, codes, count - covered, count);
    }

    /** The 4-bit code of a bf16 value, or -1 when it is an escape. */
    int code(short bf16) {
        return codes[(bf16 >>> 8) & 0xFF];
    }

    double escapeRate() {
        return count == 0 ? 0 : (double) escapes / count;
    }
}
