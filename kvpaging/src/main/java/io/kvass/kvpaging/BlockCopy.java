package io.kvass.kvpaging;

/**
 * An instruction for the backend: copy the K/V memory of block {@code src} into block
 * {@code dst} (all {@code blockSize} slots). Produced by copy-on-write; the manager itself never
 * touches memory.
 *
 * <p>NOTE: the backend must execute all copies of a step before that step's forward pass writes
 * anything, because {@code src} may be freed and reused by another sequence within the same step.
 */
public record BlockCopy(int src, int dst) {
    public BlockCopy {
        if (src < 0 || dst < 0 || src == dst) {
            throw new IllegalArgumentException("bad copy " + src + " -> " + dst);
        }
    }
}
