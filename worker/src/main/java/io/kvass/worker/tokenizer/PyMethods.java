package io.kvass.worker.tokenizer;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} methods that Hugging Face chat templates call ({@code content.startswith('<tool')},
 * {@code .split('</think>')[-1].lstrip('\n')}, ...) and {@code dict.get(key, default)}. Jinjava only offers
 * Java's methods, some of which share a name but not the meaning (Java's {@code split} takes a regex).
 * Placed before Jinjava's own resolvers; anything it does not know falls through to them.
 */
final class PyMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] types, Object[] params) {
        Object[] args = params == null ? new Object[0] : params;
        Object result = switch (base) {
            case String s -> string(s, String.valueOf(method), args);
            case Map<?, ?> m when "get".equals(method) && args.length == 2 -> m.containsKey(args[0]) ? m.get(args[0]) : args[1];
            case null, default -> null;
        };
        if (result != null) {
            context.setPropertyResolved(true);
        }
        return result;
    }

    private static Object string(String s, String method, Object[] a) {
        return switch (method) {
            case "startswith" -> anyOf(a[0], s::startsWith);
            case "endswith" -> anyOf(a[0], s::endsWith);
            case "strip" -> rstrip(lstrip(s, chars(a)), chars(a));
            case "lstrip" -> lstrip(s, chars(a));
            case "rstrip" -> rstrip(s, chars(a));
            case "split" -> split(s, a);
            case "upper" -> s.toUpperCase(java.util.Locale.ROOT);
            case "lower" -> s.toLowerCase(java.util.Locale.ROOT);
            case "capitalize" -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(java.util.Locale.ROOT)
                    + s.substring(1).toLowerCase(java.util.Locale.ROOT);
            case "title" -> title(s);
            case "replace" -> s.replace(String.valueOf(a[0]), String.valueOf(a[1]));
            case "find" -> (long) s.indexOf(String.valueOf(a[0]));
            case "count" -> (long) split(s, new Object[] {nonEmpty(a[0])}).size() - 1;
            case "join" -> join(s, a[0]);
            default -> null;
        };
    }

    private static boolean anyOf(Object prefixes, java.util.function.Predicate<String> test) {
        if (prefixes instanceof Collection<?> c) {
            return c.stream().anyMatch(p -> test.test(String.valueOf(p)));
        }
        return test.test(String.valueOf(prefixes));
    }

    /** Python strips whitespace by default, or any of the given characters. */
    private static String chars(Object[] a) {
        return a.length == 0 || a[0] == null ? null : String.valueOf(a[0]);
    }

    private static boolean strippable(char c, String chars) {
        return chars == null ? Character.isWhitespace(c) || Character.isSpaceChar(c) : chars.indexOf(c) >= 0;
    }

    private static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length() && strippable(s.charAt(i), chars)) {
            i++;
        }
        return s.substring(i);
    }

    private static String rstrip(String s, String chars) {
        int i = s.length();
        while (i > 0 && strippable(s.charAt(i - 1), chars)) {
            i--;
        }
        return s.substring(0, i);
    }

    private static List<String> split(String s, Object[] a) {
        String sep = chars(a);
        int max = a.length > 1 ? ((Number) a[1]).intValue() : -1;
        List<String> parts = new ArrayList<>();
        if (sep != null) {
            nonEmpty(sep);
        }
        if (sep == null) { // runs of whitespace, no empty parts
            for (String p : s.strip().split("\\s+", max < 0 ? 0 : max + 1)) {
                if (!p.isEmpty()) {
                    parts.add(p);
                }
            }
            return parts;
        }
        int from = 0;
        for (int at; (max < 0 || parts.size() < max) && (at = s.indexOf(sep, from)) >= 0; from = at + sep.length()) {
            parts.add(s.substring(from, at));
        }
        parts.add(s.substring(from));
        return parts;
    }

    private static String nonEmpty(Object sep) {
        if (String.valueOf(sep).isEmpty()) {
            throw new IllegalArgumentException("empty separator");
        }
        return String.valueOf(sep);
    }

    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean prevLetter = false;
        for (char c : s.toCharArray()) {
            out.append(prevLetter ? Character.toLowerCase(c) : Character.toUpperCase(c));
            prevLetter = Character.isLetter(c);
        }
        return out.toString();
    }

    private static String join(String sep, Object items) {
        Iterable<?> it = items instanceof Iterable<?> i ? i : List.of(items);
        List<String> parts = new ArrayList<>();
        it.forEach(x -> parts.add(String.valueOf(x)));
        return parts.stream().collect(Collectors.joining(sep));
    }

    // Property access is left to Jinjava's resolvers.

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {}

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
