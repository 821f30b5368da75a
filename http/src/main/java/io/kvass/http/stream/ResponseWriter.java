package io.kvass.http.stream;

import io.kvass.http.api.ApiError;
import io.kvass.http.api.Usage;
import io.kvass.scheduler.output.RequestOutput;

/**
 * Where a request's outputs go: an SSE stream or one JSON body. The {@link RequestStream} actor
 * calls it from its own thread only, in this order: {@code begin}, {@code output}*, then one of
 * {@code finish} / {@code fail}.
 */
public interface ResponseWriter {

    void begin();

    /**
     * @param choice the response's choice index
     * @return false when the client cannot take more (it stopped reading or went away)
     */
    boolean output(int choice, RequestOutput output);

    /** Every choice has finished. */
    void finish(Usage usage);

    void fail(ApiError error);
}
