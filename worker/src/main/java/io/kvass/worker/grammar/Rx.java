package io.kvass.worker.grammar;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A regular language over bytes, as a tree: what the JSON Schema compiler and the regex parser produce and
 * {@link ByteNfa} turns into an automaton. Values, so one sub-language can be instantiated several times
 * (bounded repetition) without aliasing.
 */
sealed interface Rx {

    /** One byte in {@code [lo, hi]} (unsigned). */
    record Bytes(int lo, int hi) implements Rx {
        public Bytes {
            if (lo < 0 || hi > 255 || lo > hi) {
                throw new IllegalArgumentException("byte range [" + lo + ", " + hi + "]");
            }
        }
    }

    record Seq(List<Rx> parts) implements Rx {
        public Seq {
            parts = List.copyOf(parts);
        }
    }

    /** The union; an empty list is the empty language (nothing matches). */
    record Alt(List<Rx> options) implements Rx {
        public Alt {
            options = List.copyOf(options);
        }
    }

    /** {@code item{min,max}}, {@code max < 0} meaning unbounded. */
    record Repeat(Rx item, int min, int max) implements Rx {
        public Repeat {
            if (min < 0 || (max >= 0 && max < min)) {
                throw new IllegalArgumentException("repeat {" + min + "," + max + "}");
            }
        }
    }

    /**
     * {@code item (sep item)*} with between {@code min} and {@code max} items ({@code max < 0}: unbounded).
     * NOTE: an unbounded list instantiates {@code item} once (a loop through {@code sep}), so nested
     * lists (JSON arrays of objects of arrays...) stay linear in size rather than doubling per level.
     */
    record SepList(Rx item, Rx sep, int min, int max) implements Rx {
        public SepList {
            if (min < 0 || (max >= 0 && max < min)) {
                throw new IllegalArgumentException("list of {" + min + "," + max + "} items");
            }
        }
    }

    /**
     * Members in this order, each present or (unless required) left out, with {@code sep} between the present
     * ones: JSON object properties. NOTE: built with each member once (two chains of states: "nothing yet"
     * and "something written"), where spelling it out with {@link Alt} would double per optional member.
     */
    record Members(List<Rx> members, List<Boolean> required, Rx sep) implements Rx {
        public Members {
            members = List.copyOf(members);
            required = List.copyOf(required);
            if (members.size() != required.size()) {
                throw new IllegalArgumentException(members.size() + " members, " + required.size() + " flags");
            }
        }
    }

    Rx EMPTY_STRING = new Seq(List.of());
    Rx NOTHING = new Alt(List.of());

    static Rx literal(String text) {
        return bytes(text.getBytes(StandardCharsets.UTF_8));
    }

    static Rx bytes(byte[] bytes) {
        List<Rx> parts = new ArrayList<>(bytes.length);
        for (byte b : bytes) {
            parts.add(new Bytes(b & 0xff, b & 0xff));
        }
        return parts.size() == 1 ? parts.getFirst() : new Seq(parts);
    }

    static Rx seq(Rx... parts) {
        return new Seq(List.of(parts));
    }

    static Rx alt(Rx... options) {
        return options.length == 1 ? options[0] : new Alt(List.of(options));
    }

    static Rx optional(Rx item) {
        return new Repeat(item, 0, 1);
    }

    static Rx star(Rx item) {
        return new Repeat(item, 0, -1);
    }

    /** One ASCII character of {@code chars} (a regex-like class body such as {@code "0-9a-fA-F"}). */
    static Rx ascii(String chars) {
        List<Rx> options = new ArrayList<>();
        for (int i = 0; i < chars.length(); i++) {
            char lo = chars.charAt(i);
            char hi = lo;
            if (i + 2 < chars.length() && chars.charAt(i + 1) == '-') {
                hi = chars.charAt(i + 2);
                i += 2;
            }
            options.add(new Bytes(lo, hi));
        }
        return options.size() == 1 ? options.getFirst() : new Alt(options);
    }
}
