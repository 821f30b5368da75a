package io.kvass.worker.lora;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Objects;

/**
 * A registered adapter: the name clients ask for, a stable numeric id, and where its files live.
 *
 * @param id          derived from the name and the files' content, so every replica and every restart
 *                    agree on it; it keys prefix-cache blocks ({@code CacheScope.adapterId}), and new
 *                    weights under an old name get a new id, never stale cached K/V. Never 0 (the base model).
 * @param dir         the adapter directory's real path
 * @param fingerprint SHA-256 of the adapter's files ({@link LoraWeights#fingerprint()})
 */
public record AdapterSpec(String name, long id, Path dir, String fingerprint) {

    public AdapterSpec {
        Objects.requireNonNull(name, "name");
        if (id == 0) {
            throw new IllegalArgumentException("adapter id 0 is the base model");
        }
    }

    /** The id of adapter {@code name} with content {@code fingerprint}: 63 bits of SHA-256, never 0. */
    public static long idOf(String name, String fingerprint) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(name.getBytes(StandardCharsets.UTF_8));
            sha.update((byte) 0);
            sha.update(fingerprint.getBytes(StandardCharsets.UTF_8));
            byte[] d = sha.digest();
            long id = 0;
            for (int i = 0; i < 8; i++) {
                id = (id << 8) | (d[i] & 0xFF);
            }
            id &= Long.MAX_VALUE;
            return id == 0 ? 1 : id;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
