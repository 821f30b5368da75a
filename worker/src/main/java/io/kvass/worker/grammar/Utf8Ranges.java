package io.kvass.worker.grammar;

import java.util.ArrayList;
import java.util.List;

/**
 * Sets of Unicode code points as byte-level languages: each code point range becomes the UTF-8 byte
 * sequences that encode it (the range splitting of RE2's and Rust regex's {@code utf8} modules), so the
 * automaton never accepts an overlong form, a surrogate or a broken sequence.
 */
final class Utf8Ranges {
    static final int MAX = 0x10FFFF;
    private static final int[] LENGTH_ENDS = {0x7F, 0x7FF, 0xFFFF, MAX};

    private Utf8Ranges() {
    }

    /** One code point out of {@code ranges} ({@code [lo0, hi0, lo1, hi1, ...]}, any order); surrogates are left out. */
    static Rx of(int... ranges) {
        List<Rx> options = new ArrayList<>();
        for (int i = 0; i < ranges.length; i += 2) {
            int lo = Math.max(0, ranges[i]), hi = Math.min(MAX, ranges[i + 1]);
            if (lo > hi) {
                continue;
            }
            add(options, lo, Math.min(hi, 0xD7FF));
            add(options, Math.max(lo, 0xE000), hi);
        }
        return options.size() == 1 ? options.getFirst() : new Rx.Alt(options);
    }

    /** Every code point not in the sorted, non-overlapping {@code ranges}. */
    static int[] complement(int[] sortedRanges) {
        List<Integer> out = new ArrayList<>();
        int next = 0;
        for (int i = 0; i < sortedRanges.length; i += 2) {
            if (sortedRanges[i] > next) {
                out.add(next);
                out.add(sortedRanges[i] - 1);
            }
            next = Math.max(next, sortedRanges[i + 1] + 1);
        }
        if (next <= MAX) {
            out.add(next);
            out.add(MAX);
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static void add(List<Rx> out, int lo, int hi) {
        if (lo > hi) {
            return;
        }
        int start = 0;
        for (int n = 1; n <= 4; n++) {
            int end = LENGTH_ENDS[n - 1];
            int a = Math.max(lo, start), b = Math.min(hi, end);
            if (a <= b) {
                split(out, a, b, n);
            }
            start = end + 1;
        }
    }

    /** {@code [lo, hi]}, all of encoded length {@code n}. */
    private static void split(List<Rx> out, int lo, int hi, int n) {
        for (int i = 1; i < n; i++) {
            int m = (1 << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m)) {
                if ((lo & m) != 0) {
                    split(out, lo, lo | m, n);
                    split(out, (lo | m) + 1, hi, n);
                    return;
                }
                if ((hi & m) != m) {
                    split(out, lo, (hi & ~m) - 1, n);
                    split(out, hi & ~m, hi, n);
                    return;
                }
            }
        }
        byte[] a = encode(lo, n), b = encode(hi, n);
        List<Rx> parts = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            parts.add(new Rx.Bytes(a[i] & 0xff, b[i] & 0xff));
        }
        out.add(parts.size() == 1 ? parts.getFirst() : new Rx.Seq(parts));
    }

    private static byte[] encode(int cp, int n) {
        return switch (n) {
            case 1 -> new byte[] {(byte) cp};
            case 2 -> new byte[] {(byte) (0xC0 | cp >> 6), (byte) (0x80 | cp & 0x3F)};
            case 3 -> new byte[] {(byte) (0xE0 | cp >> 12), (byte) (0x80 | cp >> 6 & 0x3F), (byte) (0x80 | cp & 0x3F)};
            default -> new byte[] {(byte) (0xF0 | cp >> 18), (byte) (0x80 | cp >> 12 & 0x3F),
                    (byte) (0x80 | cp >> 6 & 0x3F), (byte) (0x80 | cp & 0x3F)};
        };
    }
}
