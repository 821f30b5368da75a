package io.kvass.worker.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.objects.date.StrftimeFormatter;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;
import jinjava.javax.el.CompositeELResolver;

/**
 * The one Jinjava engine for chat templates, configured like Hugging Face's Jinja2 environment (Python
 * operator precedence, string methods; whitespace rules come from {@link JinjaSource}) and with the
 * globals HF adds: {@code raise_exception}, {@code strftime_now} and a Python-style {@code tojson}.
 */
final class Jinja {

    private static final ScopedValue<Clock> CLOCK = ScopedValue.newInstance();
    private static final Jinjava ENGINE = engine();

    private Jinja() {}

    private static Jinjava engine() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PyMethods());
        resolver.add(JinjavaConfig.newBuilder().build().getElResolver());
        JinjavaConfig config = JinjavaConfig.newBuilder()
                // trim_blocks and lstrip_blocks are applied by JinjaSource: Jinjava's lstrip is not Jinja2's.
                .withElResolver(resolver)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseNaturalOperatorPrecedence(true) // a + b | trim filters b only, as in Jinja2
                        .withParseWhitespaceControlStrictly(true)
                        .withUseTrimmingForNotesAndExpressions(true) // {{- and -}} trim like Jinja2
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withKeepNullableLoopValues(true)
                        .withUsePyishObjectMapper(true) // print lists and dicts as Python does
                        .build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(
                new ELFunctionDefinition("", "raise_exception", Jinja.class, "raiseException", String.class));
        jinjava.getGlobalContext().registerFunction(
                new ELFunctionDefinition("", "strftime_now", Jinja.class, "strftimeNow", String.class));
        jinjava.getGlobalContext().registerFilter(new PyJson());
        return jinjava;
    }

    /** Raised by templates for conversations they do not accept. */
    static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message, null, false, false);
        }
    }

    public static Object raiseException(String message) {
        throw new Raised(message);
    }

    public static String strftimeNow(String format) {
        Clock clock = CLOCK.orElse(Clock.systemDefaultZone());
        return StrftimeFormatter.format(ZonedDateTime.now(clock), format, Locale.US);
    }

    static boolean knowsFilter(String name) {
        return ENGINE.getGlobalContext().getFilter(name) != null;
    }

    static boolean knowsTest(String name) {
        return ENGINE.getGlobalContext().getExpTest(name) != null;
    }

    /** Parses without rendering, so that syntax errors show when a template is loaded. */
    static void checkSyntax(String source, String origin) {
        JinjavaInterpreter interpreter = ENGINE.newInterpreter();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            interpreter.parse(source);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        failOnFatal(interpreter.getErrors(), origin);
    }

    /** Renders, failing on any fatal error; {@code raise_exception}'s message is passed on as is. */
    static String render(String source, Map<String, Object> context, Clock clock, String origin) {
        RenderResult result = ScopedValue.where(CLOCK, clock).call(() -> ENGINE.renderForResult(source, context));
        failOnFatal(result.getErrors(), origin);
        return result.getOutput();
    }

    private static void failOnFatal(List<TemplateError> errors, String origin) {
        var fatal = errors.stream()
                .filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)
                .toList();
        for (TemplateError e : fatal) {
            for (Throwable t = e.getException(); t != null; t = t.getCause()) {
                if (t instanceof Raised r) {
                    throw new ChatTemplateException(r.getMessage());
                }
            }
        }
        if (!fatal.isEmpty()) {
            throw new ChatTemplateException("chat template of " + origin + " failed: " + fatal.stream()
                    .map(e -> e.getMessage() + " (line " + e.getLineno() + ")")
                    .collect(Collectors.joining("; ")));
        }
    }
}
