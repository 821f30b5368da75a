package io.kvass.worker.model;

/** A model directory, config or checkpoint that kvass cannot load; the message names the problem. */
public final class ModelLoadException extends RuntimeException {
    public ModelLoadException(String message) {
        super(message);
    }

    public ModelLoadException(String message, Throwable cause) {
        super(message, cause);
    }
}
