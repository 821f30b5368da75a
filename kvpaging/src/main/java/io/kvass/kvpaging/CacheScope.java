package io.kvass.kvpaging;

import java.util.Objects;

/**
 * What besides the token ids decides whether two cached blocks hold the same K/V: the LoRA
 * adapter that produced them and the tenant's cache salt. Both go into every block hash, so a
 * request under another adapter or salt can never hit these blocks.
 *
 * @param adapterId LoRA adapter id, {@link #BASE_MODEL} for the base model
 * @param cacheSalt tenant cache salt, empty when the tenant shares its prefixes
 */
public record CacheScope(long adapterId, String cacheSalt) {
    public static final long BASE_MODEL = 0L;
    /** Base model, no salt. */
    public static final CacheScope BASE = new CacheScope(BASE_MODEL, "");

    public CacheScope {
        Objects.requireNonNull(cacheSalt, "cacheSalt (use \"\" for none)");
    }
}
