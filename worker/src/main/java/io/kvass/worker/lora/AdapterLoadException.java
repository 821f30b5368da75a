package io.kvass.worker.lora;

import java.nio.file.Path;

/** A LoRA adapter kvass cannot serve; the message names the adapter's directory and the problem. */
public final class AdapterLoadException extends RuntimeException {
    private final Path dir;

    public AdapterLoadException(Path dir, String problem) {
        super("LoRA adapter " + dir + ": " + problem);
        this.dir = dir;
    }

    public AdapterLoadException(Path dir, String problem, Throwable cause) {
        super("LoRA adapter " + dir + ": " + problem, cause);
        this.dir = dir;
    }

    /** The adapter directory as it was given (before resolving links). */
    public Path dir() {
        return dir;
    }
}
