package io.kvass.worker.lora;

import java.util.regex.Pattern;

/**
 * What an adapter may be called. The name travels into model lists, metric labels, logs and error
 * messages, so it is kept to what a model id looks like ({@code sql}, {@code org/support-v2}): no
 * control characters, markup, path climbing or unbounded length.
 */
public final class AdapterNames {
    public static final int MAX_LENGTH = 128;
    private static final Pattern ALLOWED = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:@+/-]*");

    private AdapterNames() {
    }

    /** @throws IllegalArgumentException saying what a name may be */
    public static void check(String name) {
        if (name == null || name.isEmpty() || name.length() > MAX_LENGTH || !ALLOWED.matcher(name).matches()
                || name.contains("..") || name.contains("//") || name.endsWith("/")) {
            throw new IllegalArgumentException("an adapter name is 1 to " + MAX_LENGTH + " characters: letters, digits "
                    + "and . _ - : @ + /, starting with a letter or digit, without '..', '//' or a trailing '/'");
        }
    }
}
