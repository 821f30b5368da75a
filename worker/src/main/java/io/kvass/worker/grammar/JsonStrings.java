package io.kvass.worker.grammar;

import java.util.ArrayList;
import java.util.List;

/**
 * The characters of JSON strings at the byte level: one decoded code point per unit, so length limits count
 * what JSON Schema counts. {@code \}u escapes of surrogates are left out (a lone one is not a character and a
 * pair would count as two units).
 */
final class JsonStrings {
    private static final Rx HEX = Rx.ascii("0-9a-fA-F");
    private static final Rx UNESCAPED = Utf8Ranges.of(0x20, 0x21, 0x23, 0x5B, 0x5D, Utf8Ranges.MAX);
    private static final Rx ESCAPE = Rx.seq(Rx.literal("\\"), Rx.alt(
            Rx.ascii("\"\\\\/bfnrt"),
            Rx.seq(Rx.literal("u"), Rx.alt(
                    Rx.seq(Rx.ascii("0-9a-cA-Ce-fE-F"), HEX, HEX, HEX),
                    Rx.seq(Rx.ascii("dD"), Rx.ascii("0-7"), HEX, HEX)))));
    static final Rx ANY_CHAR = Rx.alt(UNESCAPED, ESCAPE);

    private JsonStrings() {
    }

    /** {@code "..."} with between {@code min} and {@code max} characters ({@code max < 0}: unbounded). */
    static Rx string(int min, int max) {
        return Rx.seq(Rx.literal("\""), new Rx.Repeat(ANY_CHAR, min, max), Rx.literal("\""));
    }

    /** One code point of the sorted, disjoint {@code ranges}, as it appears inside a JSON string. */
    static Rx escapedChars(int[] ranges) {
        List<Integer> plain = new ArrayList<>();
        List<Rx> options = new ArrayList<>();
        for (int i = 0; i < ranges.length; i += 2) {
            int lo = ranges[i], hi = ranges[i + 1];
            for (int cp = lo; cp <= Math.min(hi, 0x5C); cp++) {
                if (cp < 0x20 || cp == '"' || cp == '\\') {
                    options.add(escaped(cp));
                }
            }
            // The plain pieces of [lo, hi]: split around '"' (0x22) and '\' (0x5C), above the controls.
            int[][] cuts = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, Utf8Ranges.MAX}};
            for (int[] cut : cuts) {
                int a = Math.max(lo, cut[0]), b = Math.min(hi, cut[1]);
                if (a <= b) {
                    plain.add(a);
                    plain.add(b);
                }
            }
        }
        if (!plain.isEmpty()) {
            options.add(Utf8Ranges.of(plain.stream().mapToInt(Integer::intValue).toArray()));
        }
        return options.size() == 1 ? options.getFirst() : new Rx.Alt(options);
    }

    private static Rx escaped(int cp) {
        List<Rx> forms = new ArrayList<>();
        switch (cp) {
            case '"' -> forms.add(Rx.literal("\\\""));
            case '\\' -> forms.add(Rx.literal("\\\\"));
            case '\b' -> forms.add(Rx.literal("\\b"));
            case '\f' -> forms.add(Rx.literal("\\f"));
            case '\n' -> forms.add(Rx.literal("\\n"));
            case '\r' -> forms.add(Rx.literal("\\r"));
            case '\t' -> forms.add(Rx.literal("\\t"));
            default -> {
            }
        }
        String hex = String.format("%04x", cp);
        forms.add(Rx.literal("\\u" + hex));
        if (!hex.equals(hex.toUpperCase())) {
            forms.add(Rx.literal("\\u" + hex.toUpperCase()));
        }
        return forms.size() == 1 ? forms.getFirst() : new Rx.Alt(forms);
    }
}
