package io.kvass.http.stream;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.api.ApiError;
import io.kvass.http.api.Choice;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.ResponseFormat;
import io.kvass.http.api.Usage;
import io.kvass.scheduler.output.RequestOutput;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/** A non-streamed response: accumulates every choice, then completes the body (or fails with the error). */
public final class JsonWriter implements ResponseWriter {
    private final ResponseFormat format;
    private final Choice[] choices;
    private final CompletableFuture<ObjectNode> body;

    public JsonWriter(GenerationJob job, CompletableFuture<ObjectNode> body) {
        this.format = ResponseFormat.of(job);
        this.body = body;
        this.choices = new Choice[job.numChoices()];
        for (int i = 0; i < choices.length; i++) {
            choices[i] = new Choice(i, format.prefix(i / job.n()), true);
        }
    }

    @Override
    public void begin() {
    }

    @Override
    public boolean output(int choice, RequestOutput output) {
        choices[choice].add(output);
        return true;
    }

    @Override
    public void finish(Usage usage) {
        body.complete(format.response(Arrays.asList(choices), usage));
    }

    @Override
    public void fail(ApiError error) {
        body.completeExceptionally(error);
    }
}
