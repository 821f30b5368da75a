package io.kvass.http.stream;

import io.kvass.http.api.ApiError;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.Usage;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.output.RequestOutput;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One API request's life, from submission to its last byte: submits an engine request per prompt,
 * writes every output to the client as it arrives (it owns the response and so every token already
 * sent), and aborts what still runs when the client goes away or the server shuts down.
 */
public final class RequestStream extends AbstractBehavior<RequestStream.Command> {

    public sealed interface Command {
    }

    private record FromEngine(Engine.Event event) implements Command {
    }

    /** The client closed the connection or stopped reading: abort and stop. */
    public enum ClientGone implements Command {
        INSTANCE
    }

    /** The server is going down: abort what still runs and end the response cleanly (finish_reason "abort"). */
    public enum Shutdown implements Command {
        INSTANCE
    }

    /** One prompt's engine request. */
    private static final class Progress {
        final int prompt;
        final int[] completionTokens;
        final boolean[] finished;
        int unfinished;
        boolean started;
        long lastOutputNanos;

        Progress(int prompt, int n) {
            this.prompt = prompt;
            this.completionTokens = new int[n];
            this.finished = new boolean[n];
            this.unfinished = n;
        }
    }

    private final GenerationJob job;
    private final ResponseWriter writer;
    private final ServingMetrics metrics;
    private final ActiveStreams active;
    private final long arrivalNanos;
    private final Map<String, Progress> progress = new HashMap<>();
    private int unfinished;

    public static Behavior<Command> create(GenerationJob job, ResponseWriter writer, ServingMetrics metrics,
                                           ActiveStreams active, long arrivalNanos) {
        return Behaviors.setup(ctx -> new RequestStream(ctx, job, writer, metrics, active, arrivalNanos));
    }

    private RequestStream(ActorContext<Command> context, GenerationJob job, ResponseWriter writer,
                          ServingMetrics metrics, ActiveStreams active, long arrivalNanos) {
        super(context);
        this.job = job;
        this.writer = writer;
        this.metrics = metrics;
        this.active = active;
        this.arrivalNanos = arrivalNanos;
        active.add(context.getSelf());
        writer.begin();
        ActorRef<Engine.Event> replyTo = context.messageAdapter(Engine.Event.class, FromEngine::new);
        for (int p = 0; p < job.prompts().size(); p++) {
            GenerationJob.Prompt prompt = job.prompts().get(p);
            String id = job.engineRequestId(p);
            progress.put(id, new Progress(p, job.n()));
            unfinished += job.n();
            Request request = new Request(id, prompt.tokenIds(), prompt.params(), CacheScope.BASE, 0, job.priority(),
                    arrivalNanos);
            job.model().replica().tell(new Engine.Submit(request, replyTo));
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(FromEngine.class, m -> onEngine(m.event()))
                .onMessageEquals(ClientGone.INSTANCE, this::onClientGone)
                .onMessageEquals(Shutdown.INSTANCE, this::onShutdown)
                .onSignal(PostStop.class, s -> {
                    active.remove(getContext().getSelf());
                    return this;
                })
                .build();
    }

    private Behavior<Command> onEngine(Engine.Event event) {
        return switch (event) {
            case Engine.Output(RequestOutput o) -> onOutput(o);
            case Engine.Rejected(String id, String reason) -> failWith(ApiError.invalid(reason));
            case Engine.Failed(String id, String reason) -> failWith(ApiError.internal(reason));
        };
    }

    private Behavior<Command> onOutput(RequestOutput o) {
        Progress p = progress.get(o.requestId());
        if (p == null) {
            return this;
        }
        record(p, o);
        p.completionTokens[o.index()] = o.completionTokens();
        if (!writer.output(job.choiceIndex(p.prompt, o.index()), o)) {
            getContext().getLog().info("request {}: the client stopped reading; aborting", job.id());
            return onClientGone();
        }
        if (o.finished()) {
            p.unfinished--;
            unfinished--;
            p.finished[o.index()] = true;
            metrics.finished(job.model().name(), o.finish().orElseThrow().reason().apiName(), secondsSince(arrivalNanos));
        }
        if (unfinished == 0) {
            writer.finish(usage());
            return Behaviors.stopped();
        }
        return this;
    }

    private void record(Progress p, RequestOutput o) {
        long now = System.nanoTime();
        String model = job.model().name();
        if (!p.started) {
            p.started = true;
            metrics.promptTokens(model, o.promptTokens());
            metrics.timeToFirstToken(model, secondsSince(arrivalNanos));
        } else if (!o.tokens().isEmpty()) {
            metrics.interTokenLatency(model, (now - p.lastOutputNanos) / 1e9);
        }
        p.lastOutputNanos = now;
        metrics.generationTokens(model, o.tokens().size());
    }

    private Behavior<Command> failWith(ApiError error) {
        abortUnfinished(false);
        writer.fail(error);
        return Behaviors.stopped();
    }

    private Behavior<Command> onClientGone() {
        abortUnfinished(true);
        return Behaviors.stopped();
    }

    private Behavior<Command> onShutdown() {
        for (Progress p : progress.values()) {
            for (int i = 0; i < job.n(); i++) {
                if (!p.finished[i]) {
                    writer.output(job.choiceIndex(p.prompt, i), new RequestOutput(job.engineRequestId(p.prompt), i,
                            List.of(), "", Optional.of(Finish.of(FinishReason.ABORT)),
                            job.prompts().get(p.prompt).tokenIds().length, p.completionTokens[i]));
                }
            }
        }
        abortUnfinished(true);
        writer.finish(usage());
        return Behaviors.stopped();
    }

    /** Frees the KV blocks of every request still running; {@code count} records the aborted completions. */
    private void abortUnfinished(boolean count) {
        for (var e : progress.entrySet()) {
            Progress p = e.getValue();
            if (p.unfinished > 0) {
                job.model().replica().tell(new Engine.Abort(e.getKey()));
                if (count) {
                    for (int i = 0; i < p.unfinished; i++) {
                        metrics.finished(job.model().name(), FinishReason.ABORT.apiName(), secondsSince(arrivalNanos));
                    }
                }
                p.unfinished = 0;
            }
        }
        unfinished = 0;
    }

    private Usage usage() {
        int prompt = 0;
        int completion = 0;
        for (Progress p : progress.values()) {
            prompt += job.prompts().get(p.prompt).tokenIds().length;
            for (int c : p.completionTokens) {
                completion += c;
            }
        }
        return new Usage(prompt, completion);
    }

    private static double secondsSince(long nanos) {
        return (System.nanoTime() - nanos) / 1e9;
    }
}
