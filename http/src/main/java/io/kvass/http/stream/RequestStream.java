package io.kvass.http.stream;

import io.kvass.http.AdapterCatalog;
import io.kvass.http.api.ApiError;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.metrics.CompletionTimes;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.scheduler.router.RouterActor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
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

    private record FromRouter(RouterActor.Routed routed) implements Command {
    }

    private record EngineGone(ActorRef<Engine.Command> engine) implements Command {
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
    private final ActorRef<Engine.Event> replyTo;
    private final ActorRef<RouterActor.Routed> routerReplies;
    /** Engine request id -> the replica running it; absent while the router holds it. */
    private final Map<String, RouterActor.To> placed = new HashMap<>();
    private final Map<String, List<String>> triedReplicas = new HashMap<>();
    private final Set<ActorRef<Engine.Command>> watched = new HashSet<>();

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
        this.replyTo = context.messageAdapter(Engine.Event.class, FromEngine::new);
        this.routerReplies = context.messageAdapter(RouterActor.Routed.class, FromRouter::new);
        for (int p = 0; p < job.prompts().size(); p++) {
            metrics.requestParams(job.model().base().name(), job.n(), job.prompts().get(p).params().maxTokens());
            route(p);
        }
    }

    /** Asks the gateway's router for a replica for prompt {@code p}: now, or once one has room. */
    private void route(int p) {
        String id = job.engineRequestId(p);
        GenerationJob.Prompt prompt = job.prompts().get(p);
        var request = new RouterActor.Request(id, job.model().base().name(), prompt.tokenIds(),
                job.model().scope(), "", job.priority(), triedReplicas.getOrDefault(id, List.of()));
        job.model().base().router().tell(new RouterActor.Route(request, routerReplies));
    }

    private Behavior<Command> onRouted(RouterActor.Routed routed) {
        return switch (routed) {
            case RouterActor.Refused r -> fail(ApiError.overloaded(r.reason()));
            case RouterActor.To to -> {
                String id = to.requestId();
                int p = promptOf(id);
                if (p < 0 || !progress.unfinishedRequests().contains(id)) {
                    yield this; // ended meanwhile
                }
                placed.put(id, to);
                if (watched.add(to.engine())) {
                    getContext().watchWith(to.engine(), new EngineGone(to.engine()));
                }
                GenerationJob.Prompt prompt = job.prompts().get(p);
                Request request = new Request(id, prompt.tokenIds(), prompt.params(), job.model().scope(), 0,
                        job.priority(), arrivalNanos);
                to.engine().tell(new Engine.Submit(request, job.model().adapter().map(AdapterCatalog::source), replyTo));
                yield this;
            }
        };
    }

    /**
     * The replica of {@code requestId} cannot go on with it (draining, restarting, gone). Before its first token
     * reached the client the request simply starts over on another replica.
     */
    private Behavior<Command> onReplicaLost(String requestId, String reason) {
        RouterActor.To lost = placed.remove(requestId);
        int p = promptOf(requestId);
        if (p < 0 || !progress.unfinishedRequests().contains(requestId)) {
            return this;
        }
        if (!progress.nothingDelivered(requestId)) {
            return fail(ApiError.overloaded("The replica serving this request went away (" + reason + ")."));
        }
        if (lost != null) {
            triedReplicas.computeIfAbsent(requestId, k -> new ArrayList<>()).add(lost.replicaId());
        }
        route(p);
        return this;
    }

    private Behavior<Command> onEngineGone(ActorRef<Engine.Command> engine) {
        watched.remove(engine);
        Behavior<Command> next = this;
        for (var e : List.copyOf(placed.entrySet())) {
            if (e.getValue().engine().equals(engine)) {
                next = onReplicaLost(e.getKey(), "replica " + e.getValue().replicaId() + " stopped");
                if (next != this) {
                    return next;
                }
            }
        }
        return next;
    }

    private int promptOf(String requestId) {
        for (int p = 0; p < job.prompts().size(); p++) {
            if (job.engineRequestId(p).equals(requestId)) {
                return p;
            }
        }
        return -1;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(FromEngine.class, m -> onEngine(m.event()))
                .onMessage(FromRouter.class, m -> onRouted(m.routed()))
                .onMessage(EngineGone.class, m -> onEngineGone(m.engine()))
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
            case Engine.Unavailable(String id, String reason) -> onReplicaLost(id, reason);
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
        if (adapter.isPresent() && job.model().base().adapters().flatMap(c -> c.find(adapter.get().name()))
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

    /** Frees the KV blocks of every engine request still running, and the router's hold of those not placed yet. */
    private void abortEngineRequests() {
        for (String id : progress.unfinishedRequests()) {
            RouterActor.To to = placed.get(id);
            if (to != null) {
                to.engine().tell(new Engine.Abort(id));
            } else {
                job.model().base().router().tell(new RouterActor.Cancel(id));
            }
        }
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
