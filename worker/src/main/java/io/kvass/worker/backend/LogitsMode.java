package io.kvass.worker.backend;

/** Which positions of a sequence's new tokens need logits. */
public enum LogitsMode {
    /** A chunk of a prompt whose end is still to come: nothing to sample. */
    NONE,
    /** The usual case: the distribution for the next token. */
    LAST,
    /** Every position (prompt logprobs, reference checks). */
    ALL
}
