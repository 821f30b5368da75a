package io.kvass.scheduler.core;

import java.util.Optional;
import java.util.Set;

/** Token-level stop rules, checked after each sampled token (stop strings live with detokenization). */
final class StopConditions {
    private StopConditions() {
    }

    static Optional<Finish> check(SequenceState seq, int token, Set<Integer> eosTokenIds, int maxModelLen) {
        var p = seq.params();
        boolean minReached = seq.numOutputTokens() >= p.minTokens();
        if (minReached && !p.ignoreEos() && eosTokenIds.contains(token)) {
            return Optional.of(Finish.of(FinishReason.STOP));
        }
        if (minReached && p.stopTokenIds().contains(token)) {
            return Optional.of(new Finish(FinishReason.STOP, Optional.of(token)));
        }
        if (seq.numOutputTokens() >= p.maxTokens() || seq.numTokens() >= maxModelLen) {
            return Optional.of(Finish.of(FinishReason.LENGTH));
        }
        return Optional.empty();
    }
}
