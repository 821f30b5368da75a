package io.kvass.worker.sampling;

/** Applies a grammar's token bitmask (bit {@code id % 64} of word {@code id / 64}) to one logits row. */
final class GrammarMask {
    private GrammarMask() {
    }

    /** Sets every logit whose bit is clear to -inf; ids past the mask (none, normally) are masked too. */
    static void apply(long[] mask, float[] logits) {
        int vocab = logits.length;
        for (int w = 0; w < mask.length; w++) {
            long word = mask[w];
            if (word == -1L) {
                continue; // all 64 allowed: the common case inside free strings
            }
            int base = w << 6;
            long blocked = ~word;
            while (blocked != 0) {
                int id = base + Long.numberOfTrailingZeros(blocked);
                if (id >= vocab) {
                    break;
                }
                logits[id] = Float.NEGATIVE_INFINITY;
                blocked &= blocked - 1;
            }
        }
        for (int id = mask.length << 6; id < vocab; id++) {
            logits[id] = Float.NEGATIVE_INFINITY;
        }
    }
}
