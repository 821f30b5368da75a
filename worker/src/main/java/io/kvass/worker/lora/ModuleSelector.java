package io.kvass.worker.lora;

import java.util.List;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * PEFT's way of naming modules in {@code target_modules} / {@code exclude_modules}: a regular
 * expression that must match a module's whole name, or a list of names each matching a module whose
 * name equals it or ends with {@code "." + name}.
 */
public sealed interface ModuleSelector {

    boolean matches(String moduleName);

    /** The list entries (for "matches nothing" checks); a regex is one entry. */
    List<String> entries();

    record Regex(Pattern pattern) implements ModuleSelector {
        @Override
        public boolean matches(String moduleName) {
            return pattern.matcher(moduleName).matches();
        }

        @Override
        public List<String> entries() {
            return List.of(pattern.pattern());
        }
    }

    record Names(List<String> names) implements ModuleSelector {
        public Names {
            names = List.copyOf(names);
        }

        @Override
        public boolean matches(String moduleName) {
            return names.stream().anyMatch(n -> matches(n, moduleName));
        }

        static boolean matches(String name, String moduleName) {
            return moduleName.equals(name) || moduleName.endsWith("." + name);
        }

        @Override
        public List<String> entries() {
            return names;
        }
    }

    static ModuleSelector regex(String pattern) {
        try {
            return new Regex(Pattern.compile(pattern));
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException("'" + pattern + "' is not a valid regular expression: " + e.getDescription());
        }
    }
}
