package io.kvass.http.stream;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.api.ApiError;
import io.kvass.http.api.Choice;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.ResponseFormat;
import io.kvass.http.api.Usage;
import io.kvass.scheduler.output.RequestOutput;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.QueueOfferResult;
import org.apache.pekko.util.ByteString;

/** Server-sent events as OpenAI streams them: {@code data: {chunk}\n\n} lines, then {@code data: [DONE]}. */
public final class SseWriter implements ResponseWriter {
    private static final ByteString DONE = ByteString.fromString("data: [DONE]\n\n");

    private final GenerationJob job;
    private final ResponseFormat format;
    private final BoundedSourceQueue<ByteString> queue;
    private final Choice[] choices;
    private final AtomicBoolean completed = new AtomicBoolean();

    public SseWriter(GenerationJob job, BoundedSourceQueue<ByteString> queue) {
        this.job = job;
        this.format = ResponseFormat.of(job);
        this.queue = queue;
        this.choices = new Choice[job.numChoices()];
        for (int i = 0; i < choices.length; i++) {
            choices[i] = new Choice(i, format.prefix(i / job.n()), false);
        }
    }

    /** Whether the stream was completed by the server (so its end is no disconnect). */
    public boolean completed() {
        return completed.get();
    }

    @Override
    public void begin() {
        List<ObjectNode> opening = format.openingChoices();
        if (!opening.isEmpty()) {
            send(format.chunk(opening, job.includeUsage()));
        }
    }

    @Override
    public boolean output(int choice, RequestOutput output) {
        Choice c = choices[choice];
        c.add(output);
        return format.deltaChoice(c, output).map(delta -> send(format.chunk(List.of(delta), job.includeUsage())))
                .orElse(true);
    }

    @Override
    public void finish(Usage usage) {
        if (job.includeUsage()) {
            send(format.usageChunk(usage));
        }
        close();
    }

    @Override
    public void fail(ApiError error) {
        send(error.toJson());
        close();
    }

    private void close() {
        completed.set(true);
        queue.offer(DONE);
        queue.complete();
    }

    private boolean send(ObjectNode json) {
        byte[] bytes = ("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8);
        return queue.offer(ByteString.fromArrayUnsafe(bytes)) == QueueOfferResult.enqueued();
    }
}
