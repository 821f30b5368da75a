package io.kvass.worker.tokenizer;

/**
 * A chat template could not be loaded or rendered. When the template itself rejects the conversation
 * ({@code raise_exception(...)}, e.g. "roles must alternate") the message is the template's own.
 */
public final class ChatTemplateException extends IllegalArgumentException {
    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
