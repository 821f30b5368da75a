package io.kvass.worker.tokenizer;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Adapts Jinja2 template source (as Hugging Face configures Jinja2) to source that Jinjava renders the same
 * way, and lists the filters and tests it uses so that unknown ones fail at load instead of rendering as
 * nothing.
 *
 * <p>Whitespace is handled here, not by Jinjava, whose {@code lstrip_blocks} also eats spaces in the middle
 * of a line ({@code {{ x }} {% endfor %}} loses its space): HF's {@code trim_blocks} (drop the newline after a
 * block or comment tag), {@code lstrip_blocks} (drop spaces and tabs from the start of a line up to a block or
 * comment tag), {@code +} markers that turn those off, comments, and Jinja2's dropping of one trailing
 * newline. Inside tags, never in string literals:
 *
 * <ul>
 *   <li>{@code xs[::-1]} becomes {@code xs|reverse|list}: Jinjava has no slice step.
 *   <li>{@code not x is defined} becomes {@code not (x is defined)}: Jinjava applies {@code not} to {@code x}
 *       first (Llama 3.1's {@code if not date_string is defined} would always be false).
 *   <li>A keyword argument's value is parenthesised, {@code namespace(n=xs|length - 1)} becomes
 *       {@code namespace(n=(xs|length - 1))}: Jinjava binds {@code n=xs|length} before the {@code - 1}.
 *   <li>A loop filter, {@code for x in xs if c}, which Jinjava ignores, becomes a loop over a list filtered
 *       beforehand, so {@code loop.last} and {@code loop.index} count the kept items as in Jinja2.
 *   <li>{@code }}} inside a tag (nested dict literals) gets a space, so Jinjava does not end the tag there.
 *   <li>HF's {@code generation} / {@code endgeneration} markers become a plain {@code if true} block.
 * </ul>
 *
 * @param source the adapted template
 * @param filters the filter names used
 * @param tests the test names used ({@code is defined}, {@code is not none}, ...)
 */
record JinjaSource(String source, Set<String> filters, Set<String> tests) {

    private static final Pattern REVERSE = Pattern.compile("\\[\\s*:\\s*:\\s*-\\s*1\\s*]");
    private static final Pattern NOT_IS = Pattern.compile(
            "not\\s+([A-Za-z_][\\w.]*(?:\\[[^\\]]*])*)\\s+is\\s+((?:not\\s+)?[A-Za-z_]\\w*(?:\\([^)]*\\))?)");
    private static final Pattern KWARG_NAME = Pattern.compile("[(,]\\s*[A-Za-z_]\\w*\\s*$");
    private static final Pattern FOR = Pattern.compile("\\s*for\\s+(.+?)\\s+in\\s+(.*?)\\s*", Pattern.DOTALL);
    private static final Pattern FILTER = Pattern.compile("\\|\\s*([A-Za-z_]\\w*)");
    private static final Pattern TEST = Pattern.compile("\\bis\\s+(?:not\\s+)?([A-Za-z_]\\w*)");
    private static final Pattern END_RAW = Pattern.compile("\\{%[-+]?\\s*endraw\\s*[-+]?%}");

    static JinjaSource adapt(String template) {
        return new Adapter(template).run();
    }

    private static final class Adapter {
        private final String src;
        private final StringBuilder out;
        private final StringBuilder code = new StringBuilder(); // tag code outside string literals
        private int loops;

        Adapter(String template) {
            String s = template.replace("\r\n", "\n").replace('\r', '\n');
            this.src = s.endsWith("\n") ? s.substring(0, s.length() - 1) : s; // keep_trailing_newline=False
            this.out = new StringBuilder(src.length() + 64);
        }

        JinjaSource run() {
            int i = 0;
            while (i < src.length()) {
                int open = nextTag(i);
                int dataStart = i;
                out.append(src, i, open);
                if (open == src.length()) {
                    break;
                }
                char kind = src.charAt(open + 1);
                int end = kind == '#' ? src.indexOf("#}", open + 2) : closing(open + 2, kind == '{' ? "}}" : "%}");
                if (end < 0) {
                    throw new ChatTemplateException("unterminated tag at offset " + open + ": "
                            + src.substring(open, Math.min(src.length(), open + 40)));
                }
                String body = src.substring(open + 2, end);
                char lead = body.isEmpty() ? ' ' : body.charAt(0);
                char trail = body.isEmpty() ? ' ' : body.charAt(body.length() - 1);
                i = end + 2;
                if (kind == '{') {
                    out.append("{{").append(adaptCode(body, true)).append("}}");
                    continue;
                }
                if (lead == '-') {
                    stripTrailingWhitespace();
                } else if (lead != '+') {
                    lstrip(open, dataStart);
                }
                String core = body.substring(lead == '-' || lead == '+' ? 1 : 0,
                        body.length() - (body.length() > 1 && (trail == '-' || trail == '+') ? 1 : 0));
                if (kind == '%' && core.strip().equals("raw")) {
                    Matcher m = END_RAW.matcher(src);
                    int stop = m.find(i) ? m.end() : src.length();
                    out.append("{%").append(core).append("%}").append(src, i, stop);
                    i = stop;
                } else if (kind == '%') {
                    out.append("{%").append(adaptTag(core)).append("%}");
                }
                if (trail == '-') {
                    while (i < src.length() && Character.isWhitespace(src.charAt(i))) {
                        i++;
                    }
                } else if (trail != '+' && i < src.length() && src.charAt(i) == '\n') {
                    i++; // trim_blocks
                }
            }
            return new JinjaSource(out.toString(), names(FILTER), names(TEST));
        }

        private int nextTag(int from) {
            for (int i = from; i + 1 < src.length(); i++) {
                char next = src.charAt(i + 1);
                if (src.charAt(i) == '{' && (next == '{' || next == '%' || next == '#')) {
                    return i;
                }
            }
            return src.length();
        }

        /** Where {@code close} ends the tag opened before {@code from}, skipping string literals and nested braces. */
        private int closing(int from, String close) {
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

        /**
         * lstrip_blocks: spaces and tabs between the start of the line and the tag at {@code open} go (those of
         * them, from {@code dataStart} on, that were copied to the output).
         */
        private void lstrip(int open, int dataStart) {
            int k = open;
            while (k > 0 && (src.charAt(k - 1) == ' ' || src.charAt(k - 1) == '\t')) {
                k--;
            }
            if (k == 0 || src.charAt(k - 1) == '\n') {
                out.setLength(out.length() - (open - Math.max(k, dataStart)));
            }
        }

        /** A leading {@code -}; done here for comments, which never reach Jinjava, and so for blocks too. */
        private void stripTrailingWhitespace() {
            int n = out.length();
            while (n > 0 && Character.isWhitespace(out.charAt(n - 1))) {
                n--;
            }
            out.setLength(n);
        }

        private String adaptTag(String core) {
            String word = core.strip();
            if (word.equals("generation")) {
                return " if true ";
            }
            if (word.equals("endgeneration")) {
                return " endif ";
            }
            Matcher f = FOR.matcher(core);
            int cut = f.matches() ? topLevelIf(f.group(2)) : -1;
            if (cut < 0) {
                return adaptCode(core, !word.startsWith("macro "));
            }
            String targets = f.group(1).strip();
            String items = adaptCode(f.group(2).substring(0, cut), true);
            String condition = adaptCode(f.group(2).substring(cut + 4), true);
            String list = "__kvass_loop" + loops++;
            String item = targets.contains(",") ? "[" + targets + "]" : targets;
            return " set " + list + " = [] %}{% for " + targets + " in " + items + " %}{% if " + condition
                    + " %}{% do " + list + ".append(" + item + ") %}{% endif %}{% endfor %}{% for " + targets
                    + " in " + list + " ";
        }

        /** The index of a top-level {@code " if "} (a loop filter) in a for tag's iterable part, or -1. */
        private static int topLevelIf(String s) {
            char quote = 0;
            int depth = 0;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (quote != 0) {
                    if (c == '\\') {
                        i++;
                    } else if (c == quote) {
                        quote = 0;
                    }
                } else if (c == '\'' || c == '"') {
                    quote = c;
                } else if (c == '(' || c == '[' || c == '{') {
                    depth++;
                } else if (c == ')' || c == ']' || c == '}') {
                    depth--;
                } else if (depth == 0 && s.startsWith(" if ", i)) {
                    return i;
                }
            }
            return -1;
        }

        private String adaptCode(String body, boolean wrapKwargs) {
            StringBuilder o = new StringBuilder(body.length() + 16);
            Deque<Character> brackets = new ArrayDeque<>();
            Deque<Integer> openKwargs = new ArrayDeque<>(); // bracket depths whose current kwarg value needs a ')'
            char quote = 0;
            for (int i = 0; i < body.length(); i++) {
                char c = body.charAt(i);
                if (quote != 0) {
                    o.append(c);
                    if (c == '\\' && i + 1 < body.length()) {
                        o.append(body.charAt(++i));
                    } else if (c == quote) {
                        quote = 0;
                        code.append(c);
                    }
                    continue;
                }
                Matcher reverse = REVERSE.matcher(body).region(i, body.length());
                if (c == '[' && reverse.lookingAt()) {
                    o.append("|reverse|list");
                    code.append("|reverse|list");
                    i = reverse.end() - 1;
                    continue;
                }
                Matcher notIs = NOT_IS.matcher(body).region(i, body.length());
                if (c == 'n' && (i == 0 || !isWordChar(body.charAt(i - 1))) && notIs.lookingAt()) {
                    String grouped = "not (" + notIs.group(1) + " is " + notIs.group(2) + ")";
                    o.append(grouped);
                    code.append(grouped);
                    i = notIs.end() - 1;
                    continue;
                }
                if ((c == ',' || c == ')' || c == ']' || c == '}') && !openKwargs.isEmpty()
                        && openKwargs.peek() == brackets.size()) {
                    openKwargs.pop();
                    o.append(')');
                }
                switch (c) {
                    case '\'', '"' -> quote = c;
                    case '(', '[', '{' -> brackets.push(c);
                    case ')', ']', '}' -> brackets.poll();
                    default -> {}
                }
                if (c == '}' && !o.isEmpty() && o.charAt(o.length() - 1) == '}') {
                    o.append(' '); // nested dict literal: Jinjava would end the tag at the first "}}"
                }
                boolean kwarg = wrapKwargs && c == '=' && !brackets.isEmpty() && brackets.peek() == '('
                        && (i + 1 >= body.length() || body.charAt(i + 1) != '=')
                        && KWARG_NAME.matcher(o).find();
                o.append(c);
                code.append(c);
                if (kwarg) {
                    o.append('(');
                    openKwargs.push(brackets.size());
                }
            }
            code.append('\n');
            return o.toString();
        }

        private static boolean isWordChar(char c) {
            return Character.isLetterOrDigit(c) || c == '_' || c == '.';
        }

        private Set<String> names(Pattern pattern) {
            Set<String> names = new TreeSet<>();
            Matcher m = pattern.matcher(code);
            while (m.find()) {
                names.add(m.group(1));
            }
            return names;
        }
    }
}
