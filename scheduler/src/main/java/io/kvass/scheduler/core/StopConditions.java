package io.kvass.scheduler.core;

import java.util.Optional;

/** Token-level stop rules, checked after each sampled token (stop strings live with detokenization). */
final class StopConditions {
    private StopConditions() {
    }

    /**
     * Checks the running sequence in {@code slot}, whose last token is {@code token}. Reads only its running table
     * entries (see {@link SequenceState}'s stop rules) and the model's EOS ids.
     */
    static Optional<Finish> check(RunningTable running, int slot, int token, int[] eosTokenIds) {
        int numTokens = running.numTokens(slot);
        if (numTokens >= running.minLength(slot)) {
            if (!running.ignoresEos(slot) && contains(eosTokenIds, token)) {
                return Optional.of(Finish.of(FinishReason.STOP));
            }
            if (contains(running.stopTokenIds(slot), token)) {
                return Optional.of(new Finish(FinishReason.STOP, Optional.of(token)));
            }
        }
        if (numTokens >= running.maxLength(slot)) {
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
