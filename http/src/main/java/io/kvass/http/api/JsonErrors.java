package io.kvass.http.api;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import java.util.Locale;

/**
 * Says what is wrong with a body Jackson could not parse, in the client's terms: the parser's own
 * messages name its configuration ({@code JsonReadFeature...}, {@code StreamReadConstraints...}), which
 * is neither the client's business nor anything it can act on.
 */
final class JsonErrors {
    private JsonErrors() {
    }

    static String describe(JacksonException e) {
        String original = e.getOriginalMessage() == null ? "" : e.getOriginalMessage();
        String lower = original.toLowerCase(Locale.ROOT);
        String what;
        if (e instanceof StreamConstraintsException) {
            if (lower.contains("nesting depth")) {
                what = "it nests arrays and objects more than " + JsonRequest.MAX_NESTING + " levels deep";
            } else if (lower.contains("number")) {
                what = "a number has too many digits";
            } else if (lower.contains("string")) {
                what = "a string is too long";
            } else {
                what = "it exceeds the parser's limits";
            }
        } else if (lower.contains("'nan'") || lower.contains("infinity")) {
            what = "NaN and Infinity are not JSON numbers";
        } else if (lower.contains("end-of-input") || lower.contains("no content")) {
            what = "it ends too early";
        } else {
            what = clean(original);
        }
        JsonLocation at = e.getLocation();
        String where = at == null || at.getLineNr() < 1 ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")";
        return "The request body is not valid JSON: " + what + where + ".";
    }

    /** The message's first clause, without the parser's advice (which names its settings in backticks). */
    private static String clean(String message) {
        String first = message.lines().findFirst().orElse("").strip()
                .replaceAll("(?i)\\s*\\([^()]*(feature|enable|disable)[^()]*\\)", "");
        int hint = first.indexOf('`');
        if (hint >= 0) {
            first = first.substring(0, hint);
        }
        first = first.replaceAll("(?i)[;:,]?\\s*(enable|disable)\\s*$", "").strip();
        return first.isEmpty() ? "it cannot be parsed" : first;
    }
}
