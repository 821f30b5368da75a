package io.kvass.scheduler.core;

import java.util.Locale;

/** Why a sequence ended, with the OpenAI API's names. */
public enum FinishReason {
    /** EOS, a stop token id or a stop string. */
    STOP,
    /** max_tokens or the model's context length. */
    LENGTH,
    /** The client went away or asked to cancel. */
    ABORT;

    public String apiName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
