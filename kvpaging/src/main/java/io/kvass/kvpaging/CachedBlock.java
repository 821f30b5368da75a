package io.kvass.kvpaging;

import java.util.Objects;

/** A block found in the prefix cache, with the hash it was found under. */
public record CachedBlock(int blockId, BlockHash hash) {
    public CachedBlock {
        Objects.requireNonNull(hash, "hash");
    }
}
