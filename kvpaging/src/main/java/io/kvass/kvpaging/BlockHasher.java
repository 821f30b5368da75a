package io.kvass.kvpaging;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.DigestException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Objects;

/**
 * Chained block hashes, as vLLM does it: SHA-256 over (parent hash, scope, token ids), kept to 128
 * bits.
 *
 * <p>Why 128 bits is enough: an accidental collision among n cached blocks has probability about
 * n^2 / 2^129 (1e-21 for a billion blocks). A tenant who wants to read another tenant's prefix must
 * make one of its own blocks hash to the victim's; the victim's salt is fixed inside the victim's
 * hash, so that is a second preimage (2^128 work), not a birthday collision.
 *
 * <p>The encoding is injective: fixed-width numbers and length-prefixed variable parts, so no two
 * different (parent, scope, tokens) feed SHA-256 the same bytes. The scope goes into every block,
 * not just the first, so a block's hash alone says which adapter and salt it belongs to.
 *
 * <p>NOTE: reuses one digest and its buffers, so a hash allocates only its result; not thread-safe (one
 * per manager).
 */
public final class BlockHasher {
    private static final int HEADER_BYTES = 16 + 8 + 4 + 4; // parent, adapter, salt length, token count

    private final MessageDigest sha256;
    private ByteBuffer buffer = ByteBuffer.allocate(256);
    private final ByteBuffer digest = ByteBuffer.allocate(32);
    private CacheScope saltScope;
    private byte[] saltBytes;

    public BlockHasher() {
        try {
            sha256 = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK must provide SHA-256", e);
        }
    }

    /** Hash of {@code tokens[offset, offset + length)} as the block following {@code parent}. */
    public BlockHash hash(BlockHash parent, CacheScope scope, int[] tokens, int offset, int length) {
        Objects.requireNonNull(parent, "parent");
        Objects.requireNonNull(scope, "scope");
        Objects.checkFromIndexSize(offset, length, tokens.length);
        byte[] salt = saltOf(scope);
        ByteBuffer buf = buffer(HEADER_BYTES + salt.length + 4 * length);
        buf.putLong(parent.hi()).putLong(parent.lo()).putLong(scope.adapterId());
        buf.putInt(salt.length).put(salt);
        buf.putInt(length);
        for (int i = offset; i < offset + length; i++) {
            buf.putInt(tokens[i]);
        }
        sha256.update(buf.array(), 0, buf.position());
        try {
            sha256.digest(digest.array(), 0, digest.capacity());
        } catch (DigestException e) {
            throw new IllegalStateException("SHA-256 fills 32 bytes", e);
        }
        return new BlockHash(digest.getLong(0), digest.getLong(8));
    }

    /** The salt's bytes, encoded once per scope in a row: a request hashes all its blocks under one scope. */
    private byte[] saltOf(CacheScope scope) {
        if (scope != saltScope) {
            saltBytes = scope.cacheSalt().getBytes(StandardCharsets.UTF_8);
            saltScope = scope;
        }
        return saltBytes;
    }

    private ByteBuffer buffer(int bytes) {
        if (buffer.capacity() < bytes) {
            buffer = ByteBuffer.allocate(Math.max(bytes, 2 * buffer.capacity()));
        }
        return buffer.clear();
    }
}
