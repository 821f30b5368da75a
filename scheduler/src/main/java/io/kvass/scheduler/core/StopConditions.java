package io.kvass.scheduler.core;

import java.util.Optional;

/** Token-level stop rules, checked after each sampled token (stop strings live with detokenization). */
final class StopConditions {
    private StopConditions() {
    }

    static Optional<Finish> check(SequenceState seq, int token, int[] eosTokenIds, int maxModelLen) {
        var p = seq.params();
        boolean minReached = seq.numOutputTokens() >= p.minTokens();
        if (minReached && !p.ignoreEos() && contains(eosTokenIds, token)) {
            return Optional.of(Finish.of(FinishReason.STOP));
        }
        if (minReached && !p.stopTokenIds().isEmpty() && p.stopTokenIds().contains(token)) {
            return Optional.of(new Finish(FinishReason.STOP, Optional.of(token)));
        }
        if (seq.numOutputTokens() >= p.maxTokens() || seq.numTokens() >= maxModelLen) {
            return Optional.of(Finish.of(FinishReason.LENGTH));
        }
        return Optional.empty();
    }

    /** A model has one to three EOS ids: a scan beats boxing into a set. */
    private static boolean contains(int[] ids, int token) {
        for (int id : ids) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }
}
