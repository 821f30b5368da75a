package io.kvass.worker.grammar;

/** A schema, regex or choice list that cannot be compiled; the message names the keyword or construct. */
public final class GrammarException extends IllegalArgumentException {
    public GrammarException(String message) {
        super(message);
    }
}
