package io.kvass.worker.grammar;

import java.util.ArrayList;
import java.util.List;

/**
 * Integer ranges as languages of decimal digit strings (no leading zeros, {@code -} for negatives), and the
 * JSON numbers the schema compiler allows: the classic split of {@code [lo, hi]} into runs of
 * "prefix, one digit range, then any digits".
 */
final class NumberRanges {
    /** Numbers carry at most this many integer (and fraction) digits: a model cannot loop on digits. */
    static final int MAX_DIGITS = 16;
    /** The largest magnitude an integer may have (16 digits). */
    static final long LIMIT = 9_999_999_999_999_999L;

    private NumberRanges() {
    }

    static final Rx DIGIT = new Rx.Bytes('0', '9');

    /** An unbounded JSON number (bounded in digits): {@code -?int(.frac)?(e[+-]?d{1,2})?}. */
    static Rx anyNumber() {
        Rx frac = Rx.seq(Rx.literal("."), new Rx.Repeat(DIGIT, 1, MAX_DIGITS));
        Rx exp = Rx.seq(Rx.ascii("eE"), Rx.optional(Rx.ascii("+-")), new Rx.Repeat(DIGIT, 1, 2));
        return Rx.seq(Rx.optional(Rx.literal("-")), unsignedInt(), Rx.optional(frac), Rx.optional(exp));
    }

    /** Any integer within {@link #LIMIT}: {@code -?(0|[1-9]\d{0,15})}. */
    static Rx anyInteger() {
        return Rx.seq(Rx.optional(Rx.literal("-")), unsignedInt());
    }

    private static Rx unsignedInt() {
        return Rx.alt(Rx.literal("0"), Rx.seq(new Rx.Bytes('1', '9'), new Rx.Repeat(DIGIT, 0, MAX_DIGITS - 1)));
    }

    /** The integers in {@code [lo, hi]} (clamped to ±{@link #LIMIT}). */
    static Rx integers(long lo, long hi) {
        lo = Math.max(lo, -LIMIT);
        hi = Math.min(hi, LIMIT);
        List<Rx> options = new ArrayList<>();
        if (hi >= 0 && lo <= hi) {
            options.add(unsigned(Math.max(lo, 0), hi));
        }
        if (lo < 0 && lo <= hi) {
            options.add(Rx.seq(Rx.literal("-"), unsigned(Math.max(1, -hi), -lo)));
        }
        return options.size() == 1 ? options.getFirst() : new Rx.Alt(options);
    }

    /**
     * Numbers between integer bounds (each inclusive or exclusive; {@code Long.MIN_VALUE}/{@code MAX_VALUE}
     * for none), without exponents: integers (optionally {@code .0}) in range, and {@code D.F} with a
     * fraction ending in a non-zero digit, whose value lies strictly between {@code D} and {@code D+1}.
     */
    static Rx numbers(long lo, boolean loExclusive, long hi, boolean hiExclusive) {
        lo = Math.max(lo, -LIMIT);
        hi = Math.min(hi, LIMIT);
        List<Rx> options = new ArrayList<>();
        long zlo = loExclusive ? lo + 1 : lo, zhi = hiExclusive ? hi - 1 : hi;
        if (zlo <= zhi) {
            options.add(Rx.seq(integers(zlo, zhi), Rx.optional(Rx.literal(".0"))));
        }
        Rx frac = Rx.seq(Rx.literal("."), new Rx.Repeat(DIGIT, 0, MAX_DIGITS - 1), new Rx.Bytes('1', '9'));
        long plo = Math.max(lo, 0), phi = hi - 1;  // D.F > 0 with D in [plo, phi]
        if (plo <= phi) {
            options.add(Rx.seq(unsigned(plo, phi), frac));
        }
        long nlo = Math.max(-hi, 0), nhi = -lo - 1;  // -D.F < 0 with D in [nlo, nhi]
        if (nlo <= nhi) {
            options.add(Rx.seq(Rx.literal("-"), unsigned(nlo, nhi), frac));
        }
        return new Rx.Alt(options);
    }

    /** {@code [lo, hi]} for {@code 0 <= lo <= hi}, without leading zeros. */
    static Rx unsigned(long lo, long hi) {
        List<Rx> options = new ArrayList<>();
        int dlo = Long.toString(lo).length(), dhi = Long.toString(hi).length();
        for (int d = dlo; d <= dhi; d++) {
            long first = d == 1 ? 0 : pow10(d - 1), last = pow10(d) - 1;
            long a = Math.max(lo, first), b = Math.min(hi, last);
            if (a <= b) {
                options.add(sameLength(Long.toString(a), Long.toString(b)));
            }
        }
        return options.size() == 1 ? options.getFirst() : new Rx.Alt(options);
    }

    /** Digit strings of one length between {@code lo} and {@code hi} (leading zeros allowed inside). */
    private static Rx sameLength(String lo, String hi) {
        int k = lo.length();
        if (k == 0) {
            return Rx.EMPTY_STRING;
        }
        if (lo.chars().allMatch(c -> c == '0') && hi.chars().allMatch(c -> c == '9')) {
            return new Rx.Repeat(DIGIT, k, k);
        }
        char l0 = lo.charAt(0), h0 = hi.charAt(0);
        String lr = lo.substring(1), hr = hi.substring(1);
        if (l0 == h0) {
            return Rx.seq(new Rx.Bytes(l0, l0), sameLength(lr, hr));
        }
        List<Rx> options = new ArrayList<>();
        options.add(Rx.seq(new Rx.Bytes(l0, l0), sameLength(lr, "9".repeat(k - 1))));
        if (l0 + 1 <= h0 - 1) {
            options.add(Rx.seq(new Rx.Bytes(l0 + 1, h0 - 1), new Rx.Repeat(DIGIT, k - 1, k - 1)));
        }
        options.add(Rx.seq(new Rx.Bytes(h0, h0), sameLength("0".repeat(k - 1), hr)));
        return new Rx.Alt(options);
    }

    private static long pow10(int e) {
        long p = 1;
        for (int i = 0; i < e; i++) {
            p *= 10;
        }
        return p;
    }
}
