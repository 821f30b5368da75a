package io.kvass.worker.tokenizer;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Adapts Jinja2 template source to what Jinjava parses the same way, and lists the filters and tests it
 * uses so that unknown ones fail at load instead of rendering as nothing. Only code inside {@code {{ }}} and
 * {@code {% %}} is touched, never string literals or text:
 *
 * <ul>
 *   <li>{@code xs[::-1]} becomes {@code xs|reverse|list}: Jinjava has no slice step.
 *   <li>A keyword argument's value is parenthesised, {@code namespace(n=xs|length - 1)} becomes
 *       {@code namespace(n=(xs|length - 1))}: Jinjava binds {@code n=xs|length} before the {@code - 1}.
 * </ul>
 *
 * @param source the adapted template
 * @param filters the filter names used
 * @param tests the test names used ({@code is defined}, {@code is not none}, ...)
 */
record JinjaSource(String source, Set<String> filters, Set<String> tests) {

    private static final Pattern REVERSE = Pattern.compile("\\[\\s*:\\s*:\\s*-\\s*1\\s*]");
    private static final Pattern KWARG_NAME = Pattern.compile("[(,]\\s*[A-Za-z_]\\w*\\s*$");
    private static final Pattern FILTER = Pattern.compile("\\|\\s*([A-Za-z_]\\w*)");
    private static final Pattern TEST = Pattern.compile("\\bis\\s+(?:not\\s+)?([A-Za-z_]\\w*)");
    private static final Pattern RAW = Pattern.compile("^[-+]?\\s*raw\\s*[-+]?$");
    private static final Pattern END_RAW = Pattern.compile("\\{%[-+]?\\s*endraw\\s*[-+]?%}");

    static JinjaSource adapt(String src) {
        StringBuilder out = new StringBuilder(src.length() + 64);
        StringBuilder code = new StringBuilder(); // code outside string literals, for the name scan
        int i = 0;
        while (i < src.length()) {
            boolean expr = src.startsWith("{{", i);
            if (src.startsWith("{#", i)) {
                int end = src.indexOf("#}", i);
                end = end < 0 ? src.length() : end + 2;
                out.append(src, i, end);
                i = end;
            } else if (expr || src.startsWith("{%", i)) {
                int end = closing(src, i + 2, expr ? "}}" : "%}");
                if (end < 0) { // unterminated: leave it to Jinjava to report
                    out.append(src, i, src.length());
                    break;
                }
                String body = src.substring(i + 2, end);
                if (!expr && RAW.matcher(body.strip()).matches()) {
                    Matcher m = END_RAW.matcher(src);
                    int stop = m.find(end) ? m.end() : src.length();
                    out.append(src, i, stop);
                    i = stop;
                    continue;
                }
                boolean macro = !expr && body.strip().replaceFirst("^[-+]\\s*", "").startsWith("macro ");
                out.append(src, i, i + 2).append(adaptCode(body, code, !macro)).append(src, end, end + 2);
                code.append('\n');
                i = end + 2;
            } else {
                out.append(src.charAt(i++));
            }
        }
        return new JinjaSource(out.toString(), names(FILTER, code), names(TEST, code));
    }

    /** Where {@code close} ends the tag opened before {@code from}, skipping string literals and nested braces. */
    private static int closing(String src, int from, String close) {
        char quote = 0;
        int braces = 0;
        for (int i = from; i < src.length(); i++) {
            char c = src.charAt(i);
            if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (braces == 0 && src.startsWith(close, i)) {
                return i;
            } else if (c == '{') {
                braces++;
            } else if (c == '}') {
                braces--;
            }
        }
        return -1;
    }

    private static String adaptCode(String body, StringBuilder code, boolean wrapKwargs) {
        StringBuilder out = new StringBuilder(body.length() + 16);
        Deque<Character> brackets = new ArrayDeque<>();
        Deque<Integer> openKwargs = new ArrayDeque<>(); // bracket depths whose current kwarg value needs a ')'
        char quote = 0;
        for (int i = 0; i < body.length(); i++) {
            char c = body.charAt(i);
            if (quote != 0) {
                out.append(c);
                if (c == '\\' && i + 1 < body.length()) {
                    out.append(body.charAt(++i));
                } else if (c == quote) {
                    quote = 0;
                    code.append(c);
                }
                continue;
            }
            Matcher reverse = REVERSE.matcher(body).region(i, body.length());
            if (c == '[' && reverse.lookingAt()) {
                out.append("|reverse|list");
                code.append("|reverse|list");
                i = reverse.end() - 1;
                continue;
            }
            if ((c == ',' || c == ')' || c == ']' || c == '}') && !openKwargs.isEmpty()
                    && openKwargs.peek() == brackets.size()) {
                openKwargs.pop();
                out.append(')');
            }
            switch (c) {
                case '\'', '"' -> quote = c;
                case '(', '[', '{' -> brackets.push(c);
                case ')', ']', '}' -> brackets.poll();
                default -> {}
            }
            boolean kwarg = wrapKwargs && c == '=' && !brackets.isEmpty() && brackets.peek() == '('
                    && (i + 1 >= body.length() || body.charAt(i + 1) != '=')
                    && KWARG_NAME.matcher(out).find();
            out.append(c);
            code.append(c);
            if (kwarg) {
                out.append('(');
                openKwargs.push(brackets.size());
            }
        }
        return out.toString();
    }

    private static Set<String> names(Pattern pattern, CharSequence code) {
        Set<String> names = new TreeSet<>();
        Matcher m = pattern.matcher(code);
        while (m.find()) {
            names.add(m.group(1));
        }
        return names;
    }
}
