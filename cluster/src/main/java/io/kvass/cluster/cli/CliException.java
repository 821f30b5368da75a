package io.kvass.cluster.cli;

/** A command line kvass cannot act on; the message names the flag or value. */
public final class CliException extends RuntimeException {
    public CliException(String message) {
        super(message);
    }
}
