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
    private final EngineRequests requests;
    /** How often one completion may move to another replica before the request ends with an error. */
    public static final int MIGRATION_LIMIT = 3;
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
        this.requests = new EngineRequests(job, new java.util.SplittableRandom(), MIGRATION_LIMIT);
        for (int p = 0; p < job.prompts().size(); p++) {
            metrics.requestParams(job.model().base().name(), job.n(), job.prompts().get(p).params().maxTokens());
            route(job.engineRequestId(p));
        }
    }

    /** Asks the gateway's router for a replica for engine request {@code id}: now, or once one has room. */
    private void route(String id) {
        GenerationJob.Prompt prompt = job.prompts().get(requests.target(id).orElseThrow().prompt());
        var request = new RouterActor.Request(id, job.model().base().name(), prompt.tokenIds(),
                job.model().scope(), "", job.priority(), triedReplicas.getOrDefault(id, List.of()));
        job.model().base().router().tell(new RouterActor.Route(request, routerReplies));
    }

    /** True while engine request {@code id} has a completion the client still waits for. */
    private boolean live(String id) {
        return requests.target(id).map(t -> {
            String original = job.engineRequestId(t.prompt());
            return t.child() < 0 ? progress.unfinishedRequests().contains(original)
                    : progress.unfinishedChildren(original).contains(t.child());
        }).orElse(false);
    }

    private Behavior<Command> onRouted(RouterActor.Routed routed) {
        return switch (routed) {
            case RouterActor.Refused r -> fail(ApiError.overloaded(r.reason()));
            case RouterActor.To to -> {
                String id = to.requestId();
                if (!live(id)) {
                    yield this; // ended meanwhile
                }
                placed.put(id, to);
                if (watched.add(to.engine())) {
                    getContext().watchWith(to.engine(), new EngineGone(to.engine()));
                }
                Request request = requests.request(id, arrivalNanos);
                if (request.resumeTokens().length > 0 || id.contains("~m")) {
                    getContext().getLog().info("request {}: {} continues on {} ({}) after {} delivered tokens", job.id(),
                            id, to.replicaId(), to.node(), request.resumeTokens().length);
                }
                to.engine().tell(new Engine.Submit(request, job.model().adapter().map(AdapterCatalog::source), replyTo));
                yield this;
            }
        };
    }

    /**
     * The replica of {@code requestId} cannot go on with it (draining, restarting, killed). Before a token reached
     * the client the request simply starts over on another replica; after, each unfinished completion continues on
     * another replica from the tokens the client has (same seed, same position), so the client sees no gap and no
     * repeat. Past the migration limit the request ends with an error.
     */
    private Behavior<Command> onReplicaLost(String requestId, String reason) {
        RouterActor.To lost = placed.remove(requestId);
        if (!live(requestId)) {
            return this;
        }
        List<String> tried = new ArrayList<>(triedReplicas.getOrDefault(requestId, List.of()));
        if (lost != null) {
            tried.add(lost.replicaId());
        }
        EngineRequests.Target t = requests.target(requestId).orElseThrow();
        String original = job.engineRequestId(t.prompt());
        List<Integer> children = t.child() < 0 ? progress.unfinishedChildren(original) : List.of(t.child());
        if (t.child() < 0 && progress.nothingDelivered(original)) {
            triedReplicas.put(requestId, tried);
            route(requestId);
            return this;
        }
        var continuations = requests.migrate(requestId, children);
        if (continuations.isEmpty()) {
            return fail(ApiError.overloaded("The request could not be continued: its replica went away " + (MIGRATION_LIMIT + 1)
                    + " times (" + reason + ")."));
        }
        String from = lost == null ? "?" : lost.replicaId() + " (" + lost.node() + ")";
        for (String id : continuations.get()) {
            EngineRequests.Target c = requests.target(id).orElseThrow();
            int resumed = requests.deliveredTokens(c.prompt(), c.child());
            getContext().getLog().info("request {}: migrating completion {} from {} after {} delivered tokens: {}",
                    job.id(), job.choiceIndex(c.prompt(), c.child()), from, resumed, reason);
            metrics.migrated(job.model().base().name(), reason.contains("draining") ? "drain" : "replica_lost",
                    job.prompts().get(c.prompt()).tokenIds().length + resumed);
            triedReplicas.put(id, tried);
            route(id);
        }
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
            // NOTE: only the replica an engine request is placed on speaks for it: a late output of one given up
            // (it went unreachable, then came back) would repeat tokens its continuation sends
            case Engine.Output(RequestOutput o) -> placed.containsKey(o.requestId()) ? onOutput(o) : this;
            case Engine.Rejected(String id, String reason) -> fail(rejected(reason));
            case Engine.Failed(String id, String reason) -> fail(ApiError.internal(reason));
            case Engine.Unavailable(String id, String reason) -> onReplicaLost(id, reason);
        };
    }

    private Behavior<Command> onOutput(RequestOutput fromEngine) {
        RequestOutput o = requests.translate(fromEngine);
        long now = System.nanoTime();
        var recorded = progress.record(o, now);
        if (recorded.isEmpty()) {
            return this;
        }
        requests.delivered(o);
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
        for (String id : requests.all()) {
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
