package io.kvass.worker.grammar;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A regular expression (the common subset of Python's {@code re}, JavaScript and JSON Schema's
 * {@code pattern}) as a byte-level language over UTF-8: literals, {@code .}, classes with ranges and
 * negation, {@code \d \w \s} and their negations, groups, alternation and the quantifiers
 * {@code * + ? {n} {n,} {n,m}} (lazy forms match the same strings). Matches the whole string; a leading
 * {@code ^} and trailing {@code $} are accepted and mean the same. Look-around, back-references and
 * anchors elsewhere are refused with a {@link GrammarException}.
 *
 * <p>In {@linkplain #jsonString JSON string mode} the language is of the text inside a JSON string's quotes:
 * a {@code "}, {@code \} or control character the pattern allows appears in its escaped form.
 */
final class RegexParser {
    private static final int MAX_REPEAT = 1000;

    private final String src;
    private final boolean jsonString;
    private int pos;

    private RegexParser(String src, boolean jsonString) {
        this.src = src;
        this.jsonString = jsonString;
    }

    static Rx parse(String regex) {
        return new RegexParser(regex, false).whole();
    }

    /** The inside of a JSON string whose decoded value matches {@code regex}. */
    static Rx jsonString(String regex) {
        return new RegexParser(regex, true).whole();
    }

    private Rx whole() {
        if (src.startsWith("^")) {
            pos = 1;
        }
        Rx rx = alternation();
        if (pos < src.length()) {
            throw error("unexpected '" + src.charAt(pos) + "'");
        }
        return rx;
    }

    private GrammarException error(String what) {
        return new GrammarException("regex /" + src + "/ at " + pos + ": " + what);
    }

    private Rx alternation() {
        List<Rx> options = new ArrayList<>();
        options.add(concatenation());
        while (pos < src.length() && src.charAt(pos) == '|') {
            pos++;
            options.add(concatenation());
        }
        return options.size() == 1 ? options.getFirst() : new Rx.Alt(options);
    }

    private Rx concatenation() {
        List<Rx> parts = new ArrayList<>();
        while (pos < src.length() && src.charAt(pos) != '|' && src.charAt(pos) != ')') {
            if (src.charAt(pos) == '$' && pos == src.length() - 1) {
                pos++;
                break;
            }
            parts.add(quantified(atom()));
        }
        return parts.size() == 1 ? parts.getFirst() : new Rx.Seq(parts);
    }

    private Rx quantified(Rx atom) {
        while (pos < src.length()) {
            char c = src.charAt(pos);
            int min, max;
            if (c == '*') {
                min = 0; max = -1; pos++;
            } else if (c == '+') {
                min = 1; max = -1; pos++;
            } else if (c == '?') {
                min = 0; max = 1; pos++;
            } else if (c == '{' && isCount()) {
                pos++;
                min = number();
                max = min;
                if (src.charAt(pos) == ',') {
                    pos++;
                    max = src.charAt(pos) == '}' ? -1 : number();
                }
                pos++; // '}'
                if (max >= 0 && max < min) {
                    throw error("{" + min + "," + max + "} is empty");
                }
            } else {
                return atom;
            }
            if (min > MAX_REPEAT || max > MAX_REPEAT) {
                throw error("repetition counts over " + MAX_REPEAT + " are not supported");
            }
            if (pos < src.length() && (src.charAt(pos) == '?' || src.charAt(pos) == '+')) {
                if (src.charAt(pos) == '+') {
                    throw error("possessive quantifiers are not supported");
                }
                pos++; // lazy: same language
            }
            atom = new Rx.Repeat(atom, min, max);
        }
        return atom;
    }

    private boolean isCount() {
        int end = src.indexOf('}', pos);
        return end > pos + 1 && src.substring(pos + 1, end).matches("\\d+(,\\d*)?");
    }

    private int number() {
        int start = pos;
        while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
            pos++;
        }
        try {
            return Integer.parseInt(src.substring(start, pos));
        } catch (NumberFormatException e) {
            throw error("repetition count too large");
        }
    }

    private Rx atom() {
        char c = src.charAt(pos);
        switch (c) {
            case '(' -> {
                pos++;
                if (src.startsWith("?:", pos)) {
                    pos += 2;
                } else if (src.startsWith("?P<", pos) || src.startsWith("?<", pos) && !src.startsWith("?<=", pos)
                        && !src.startsWith("?<!", pos)) {
                    pos = src.indexOf('>', pos) + 1;
                    if (pos == 0) {
                        throw error("unterminated group name");
                    }
                } else if (src.startsWith("?", pos)) {
                    throw error("group construct (" + src.substring(pos, Math.min(src.length(), pos + 3))
                            + " (look-around, flags) is not supported");
                }
                Rx inner = alternation();
                if (pos >= src.length() || src.charAt(pos) != ')') {
                    throw error("missing ')'");
                }
                pos++;
                return inner;
            }
            case '[' -> {
                pos++;
                return chars(charClass());
            }
            case '.' -> {
                pos++;
                return chars(Utf8Ranges.complement(new int[] {'\n', '\n'}));
            }
            case '\\' -> {
                pos++;
                int[] set = escape(false);
                return chars(set);
            }
            case '*', '+', '?' -> throw error("nothing to repeat");
            case '^', '$' -> throw error("anchors inside the pattern are not supported");
            default -> {
                int cp = src.codePointAt(pos);
                pos += Character.charCount(cp);
                return chars(new int[] {cp, cp});
            }
        }
    }

    /** Parses a class body after '[' up to and including ']'; returns sorted disjoint ranges. */
    private int[] charClass() {
        boolean negate = pos < src.length() && src.charAt(pos) == '^';
        if (negate) {
            pos++;
        }
        List<int[]> ranges = new ArrayList<>();
        boolean first = true;
        while (true) {
            if (pos >= src.length()) {
                throw error("missing ']'");
            }
            char c = src.charAt(pos);
            if (c == ']' && !first) {
                pos++;
                break;
            }
            first = false;
            int[] lo;
            if (c == '\\') {
                pos++;
                lo = escape(true);
            } else {
                int cp = src.codePointAt(pos);
                pos += Character.charCount(cp);
                lo = new int[] {cp, cp};
            }
            if (lo.length == 2 && lo[0] == lo[1] && pos + 1 < src.length() && src.charAt(pos) == '-'
                    && src.charAt(pos + 1) != ']') {
                pos++;
                int hi;
                if (src.charAt(pos) == '\\') {
                    pos++;
                    int[] h = escape(true);
                    if (h.length != 2 || h[0] != h[1]) {
                        throw error("bad class range");
                    }
                    hi = h[0];
                } else {
                    hi = src.codePointAt(pos);
                    pos += Character.charCount(hi);
                }
                if (hi < lo[0]) {
                    throw error("class range out of order");
                }
                ranges.add(new int[] {lo[0], hi});
            } else {
                for (int i = 0; i < lo.length; i += 2) {
                    ranges.add(new int[] {lo[i], lo[i + 1]});
                }
            }
        }
        int[] set = normalize(ranges);
        return negate ? Utf8Ranges.complement(set) : set;
    }

    /** After a backslash: one code point or a class, as ranges. */
    private int[] escape(boolean inClass) {
        if (pos >= src.length()) {
            throw error("trailing backslash");
        }
        char c = src.charAt(pos++);
        return switch (c) {
            case 'd' -> new int[] {'0', '9'};
            case 'D' -> Utf8Ranges.complement(new int[] {'0', '9'});
            case 'w' -> new int[] {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'};
            case 'W' -> Utf8Ranges.complement(new int[] {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'});
            case 's' -> new int[] {'\t', '\r', ' ', ' '};
            case 'S' -> Utf8Ranges.complement(new int[] {'\t', '\r', ' ', ' '});
            case 'n' -> one('\n');
            case 't' -> one('\t');
            case 'r' -> one('\r');
            case 'f' -> one('\f');
            case 'v' -> one(0x0B);
            case '0' -> one(0);
            case 'x' -> one(hex(2));
            case 'u' -> one(hex(4));
            case 'b' -> {
                if (inClass) {
                    yield one('\b');
                }
                throw error("\\b (word boundary) is not supported");
            }
            default -> {
                if (Character.isLetterOrDigit(c)) {
                    throw error("escape \\" + c + " is not supported");
                }
                yield one(c);
            }
        };
    }

    private int hex(int digits) {
        if (pos + digits > src.length()) {
            throw error("short hex escape");
        }
        try {
            int v = Integer.parseInt(src.substring(pos, pos + digits), 16);
            pos += digits;
            return v;
        } catch (NumberFormatException e) {
            throw error("bad hex escape");
        }
    }

    private static int[] one(int cp) {
        return new int[] {cp, cp};
    }

    private static int[] normalize(List<int[]> ranges) {
        ranges.sort((a, b) -> Integer.compare(a[0], b[0]));
        List<int[]> merged = new ArrayList<>();
        for (int[] r : ranges) {
            if (!merged.isEmpty() && r[0] <= merged.getLast()[1] + 1) {
                merged.getLast()[1] = Math.max(merged.getLast()[1], r[1]);
            } else {
                merged.add(r.clone());
            }
        }
        int[] out = new int[merged.size() * 2];
        for (int i = 0; i < merged.size(); i++) {
            out[2 * i] = merged.get(i)[0];
            out[2 * i + 1] = merged.get(i)[1];
        }
        return out;
    }

    /** One code point of {@code ranges}; in JSON string mode the ones JSON must escape appear escaped. */
    private Rx chars(int[] ranges) {
        int[] sorted = normalize(toList(ranges));
        if (!jsonString) {
            return Utf8Ranges.of(sorted);
        }
        return JsonStrings.escapedChars(sorted);
    }

    private static List<int[]> toList(int[] ranges) {
        List<int[]> list = new ArrayList<>();
        for (int i = 0; i < ranges.length; i += 2) {
            list.add(Arrays.copyOfRange(ranges, i, i + 2));
        }
        return list;
    }
}
