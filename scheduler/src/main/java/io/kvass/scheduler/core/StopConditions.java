package io.kvass.scheduler.core;

import java.util.Optional;

/** Token-level stop rules, checked after each sampled token (stop strings live with detokenization). */
final class StopConditions {
    private StopConditions() {
    }

    /** Reads only the sequence's own fields (see {@link SequenceState}'s stop rules) and the model's EOS ids. */
    static Optional<Finish> check(SequenceState seq, int token, int[] eosTokenIds) {
        int numTokens = seq.numTokens();
        if (numTokens >= seq.minLength()) {
            if (!seq.ignoresEos() && contains(eosTokenIds, token)) {
                return Optional.of(Finish.of(FinishReason.STOP));
            }
            if (contains(seq.stopTokenIds(), token)) {
                return Optional.of(new Finish(FinishReason.STOP, Optional.of(token)));
            }
        }
        if (numTokens >= seq.maxLength()) {
            return Optional.of(Finish.of(FinishReason.LENGTH));
        }
        return Optional.empty();
    }

    /** A model has one to three EOS ids, a request a few stop tokens: a scan beats boxing into a set. */
    private static boolean contains(int[] ids, int token) {
        for (int id : ids) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }
}
