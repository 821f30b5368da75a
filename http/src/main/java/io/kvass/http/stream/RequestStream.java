package io.kvass.http.stream;

import io.kvass.http.api.ApiError;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.metrics.CompletionTimes;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.output.RequestOutput;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One API request's life, from submission to its last byte: submits an engine request per prompt,
 * writes every output to the client as it arrives (it owns the response, and so every token already
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

    private final GenerationJob job;
    private final ResponseWriter writer;
    private final ServingMetrics metrics;
    private final ActiveStreams active;
    private final long arrivalNanos;
    private final JobProgress progress;
    private final CompletionTimes times;

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
        this.progress = new JobProgress(job);
        this.times = new CompletionTimes(arrivalNanos, job.n());
        active.add(context.getSelf());
        writer.begin();
        ActorRef<Engine.Event> replyTo = context.messageAdapter(Engine.Event.class, FromEngine::new);
        for (int p = 0; p < job.prompts().size(); p++) {
            GenerationJob.Prompt prompt = job.prompts().get(p);
            Request request = new Request(job.engineRequestId(p), prompt.tokenIds(), prompt.params(), job.model().scope(),
                    0, job.priority(), arrivalNanos);
            job.model().base().replica().tell(new Engine.Submit(request, replyTo));
            metrics.requestParams(job.model().base().name(), job.n(), prompt.params().maxTokens());
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
            case Engine.Rejected(String id, String reason) -> fail(rejected(reason));
            case Engine.Failed(String id, String reason) -> fail(ApiError.internal(reason));
        };
    }

    private Behavior<Command> onOutput(RequestOutput o) {
        long now = System.nanoTime();
        var recorded = progress.record(o, now);
        if (recorded.isEmpty()) {
            return this;
        }
        JobProgress.Step step = recorded.get();
        String model = job.model().base().name();
        if (step.firstOfPrompt()) {
            metrics.promptTokens(model, o.promptTokens());
            metrics.timeToFirstToken(model, secondsSinceArrival());
            job.model().adapter().ifPresent(a -> metrics.loraPromptTokens(model, a.name(), o.promptTokens()));
        } else if (!o.tokens().isEmpty()) {
            metrics.interTokenLatency(model, step.nanosSincePrevious() / 1e9);
        }
        metrics.generationTokens(model, o.tokens().size());
        job.model().adapter().ifPresent(a -> metrics.loraGenerationTokens(model, a.name(), o.tokens().size()));
        if (!writer.output(step.choice(), o)) {
            getContext().getLog().info("request {}: the client stopped reading; aborting", job.id());
            return onClientGone();
        }
        times.output(o, now, metrics, model);
        if (step.finishedChoice()) {
            recordFinished(o.finish().orElseThrow().reason().apiName());
        }
        if (progress.done()) {
            writer.finish(progress.usage());
            return Behaviors.stopped();
        }
        return this;
    }

    /**
     * The engine refused the request. When its LoRA adapter was unloaded after the request named it
     * (the engine no longer knows it), the client hears what it would have heard a moment later: 404.
     */
    private ApiError rejected(String reason) {
        var adapter = job.model().adapter();
        if (adapter.isPresent() && job.model().base().adapters().flatMap(m -> m.find(adapter.get().name()))
                .filter(s -> s.id() == adapter.get().id()).isEmpty()) {
            return ApiError.modelNotFound(adapter.get().name());
        }
        return ApiError.invalid(reason);
    }

    private Behavior<Command> fail(ApiError error) {
        abortEngineRequests();
        progress.abortAll();
        writer.fail(error);
        return Behaviors.stopped();
    }

    private Behavior<Command> onClientGone() {
        abortEngineRequests();
        progress.abortAll().forEach(o -> recordAbort());
        return Behaviors.stopped();
    }

    private Behavior<Command> onShutdown() {
        abortEngineRequests();
        for (JobProgress.Aborted a : progress.abortAll()) {
            recordAbort();
            writer.output(a.choice(), a.output());
        }
        writer.finish(progress.usage());
        return Behaviors.stopped();
    }

    /** Frees the KV blocks of every engine request still running. */
    private void abortEngineRequests() {
        progress.unfinishedRequests().forEach(id -> job.model().base().replica().tell(new Engine.Abort(id)));
    }

    private void recordAbort() {
        recordFinished(FinishReason.ABORT.apiName());
    }

    private void recordFinished(String reason) {
        String model = job.model().base().name();
        metrics.finished(model, reason, secondsSinceArrival());
        job.model().adapter().ifPresent(a -> metrics.loraFinished(model, a.name(), reason));
    }

    private double secondsSinceArrival() {
        return (System.nanoTime() - arrivalNanos) / 1e9;
    }
}
