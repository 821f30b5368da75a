package io.kvass.cluster.cli;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Parsed {@code --flag value} / {@code --flag=value} / {@code --switch} arguments, checked against the
 * flags a command knows: an unknown flag or a missing value is an error that names it.
 */
public final class CliArgs {
    private final Map<String, List<String>> values = new HashMap<>();
    private final List<Map.Entry<String, String>> ordered = new ArrayList<>();

    private CliArgs() {
    }

    /**
     * @param valued   flags that take a value (may repeat)
     * @param switches flags without a value
     */
    public static CliArgs parse(String[] args, int from, Set<String> valued, Set<String> switches) {
        return parse(args, from, valued, switches, Set.of());
    }

    /**
     * @param multi flags that take one or more values, up to the next flag ({@code --lora-modules a=X b=Y});
     *              each value counts as one occurrence
     */
    public static CliArgs parse(String[] args, int from, Set<String> valued, Set<String> switches, Set<String> multi) {
        CliArgs parsed = new CliArgs();
        for (int i = from; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("--")) {
                throw new CliException("unexpected argument '" + arg + "' (flags start with --)");
            }
            String name = arg.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (switches.contains(name)) {
                if (value != null) {
                    throw new CliException("--" + name + " takes no value");
                }
                parsed.values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
            } else if (multi.contains(name)) {
                List<String> list = parsed.values.computeIfAbsent(name, k -> new ArrayList<>());
                int before = list.size();
                if (value != null) {
                    list.add(value);
                }
                while (value == null && i + 1 < args.length && !args[i + 1].startsWith("--")) {
                    list.add(args[++i]);
                }
                if (list.size() == before) {
                    throw new CliException("--" + name + " needs a value");
                }
            } else if (valued.contains(name)) {
                if (value == null) {
                    if (i + 1 >= args.length) {
                        throw new CliException("--" + name + " needs a value");
                    }
                    value = args[++i];
                }
                parsed.values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
                parsed.ordered.add(Map.entry(name, value));
            } else {
                throw new CliException("unknown flag --" + name);
            }
        }
        return parsed;
    }

    public boolean has(String name) {
        return values.containsKey(name);
    }

    public List<String> all(String name) {
        return values.getOrDefault(name, List.of());
    }

    /** Values of any of {@code names}, in command-line order (e.g. interleaved --prompt and --prompt-ids). */
    public List<Map.Entry<String, String>> inOrder(Set<String> names) {
        return ordered.stream().filter(e -> names.contains(e.getKey())).toList();
    }

    public Optional<String> get(String name) {
        List<String> v = all(name);
        if (v.size() > 1) {
            throw new CliException("--" + name + " given " + v.size() + " times");
        }
        return v.stream().findFirst();
    }

    public String require(String name) {
        return get(name).orElseThrow(() -> new CliException("missing --" + name));
    }

    public int intValue(String name, int fallback) {
        return get(name).map(v -> parseLong(name, v)).map(Math::toIntExact).orElse(fallback);
    }

    public long longValue(String name, long fallback) {
        return get(name).map(v -> parseLong(name, v)).orElse(fallback);
    }

    public float floatValue(String name, float fallback) {
        return get(name).map(v -> {
            try {
                return Float.parseFloat(v);
            } catch (NumberFormatException e) {
                throw new CliException("--" + name + " expects a number, got '" + v + "'");
            }
        }).orElse(fallback);
    }

    /** Integers, with K/M/G suffixes (powers of 1024) for sizes such as {@code --kv-cache-memory 2G}. */
    static long parseLong(String name, String v) {
        String s = v.trim();
        long unit = 1;
        char last = s.isEmpty() ? ' ' : Character.toUpperCase(s.charAt(s.length() - 1));
        if (last == 'K' || last == 'M' || last == 'G') {
            unit = last == 'K' ? 1L << 10 : last == 'M' ? 1L << 20 : 1L << 30;
            s = s.substring(0, s.length() - 1);
        }
        try {
            return Math.multiplyExact(Long.parseLong(s), unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new CliException("--" + name + " expects an integer, got '" + v + "'");
        }
    }
}
