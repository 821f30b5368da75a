package io.kvass.scheduler.router;

import io.kvass.kvpaging.BlockHasher;
import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.ReplicaLoad;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A gateway's router: a thin shell over {@link LoadView}, {@link AdmissionQueue} and a {@link RoutingPolicy}.
 * Every gateway has its own (no node whose loss stops routing); each hears every replica's {@link ReplicaLoad},
 * death-watches its engine, and holds a request until some replica has room for it (late binding), fair across
 * tenants within a priority.
 */
public final class RouterActor extends AbstractBehavior<RouterActor.Command> {

    public sealed interface Command {
    }

    /** Pick a replica for one engine request; the answer is a {@link Routed}. */
    public record Route(Request request, ActorRef<Routed> replyTo) implements Command {
    }

    /**
     * May a new request come in? False while this gateway already holds {@code max-waiting} requests, so that a
     * client hears 503 before its response starts (a streamed response cannot change its status later).
     */
    public record Admit(ActorRef<Boolean> replyTo) implements Command {
    }

    /** The requester went away while its request was held. */
    public record Cancel(String requestId) implements Command {
    }

    /** Every replica this gateway knows of, and how many requests it holds. */
    public record GetReplicas(ActorRef<State> replyTo) implements Command {
    }

    /** @param held requests waiting at this gateway for a replica with room */
    public record State(List<ReplicaView> replicas, int held) {
    }

    /** Tell every known replica of {@code model} (e.g. to unload an adapter). */
    public record Broadcast(String model, Engine.Command command) implements Command {
    }

    private record Report(ReplicaLoad load) implements Command {
    }

    private record EngineGone(ActorRef<Engine.Command> engine) implements Command {
    }

    private enum Tick implements Command {
        INSTANCE
    }

    /**
     * What the router needs of a request.
     *
     * @param excluded replicas that just gave this request back (draining, restarting): not used until they
     *                 report again
     */
    public record Request(String requestId, String model, int[] promptTokenIds, CacheScope scope, String tenant,
                          int priority, List<String> excluded) {
        public Request {
            excluded = List.copyOf(excluded);
        }
    }

    public sealed interface Routed {
        String requestId();
    }

    /** Send it to {@code engine}; {@code reason} says why this replica (counted in /metrics). */
    public record To(String requestId, ActorRef<Engine.Command> engine, String replicaId, String node, String reason)
            implements Routed {
    }

    /** No replica will take it: the gateway's queue is full, or no replica of the model came in time. */
    public record Refused(String requestId, String reason) implements Routed {
    }

    /** What the gateway's metrics hear of each decision. */
    public interface Listener {
        void routed(String model, String reason, double secondsHeld);

        Listener NONE = (model, reason, seconds) -> { };
    }

    /**
     * @param routing     the routing knobs (staleness bound, per-replica queue bound, max-waiting, weights, balance)
     * @param maxHoldTime a request held this long is refused (no replica of its model, or none had room)
     */
    public record Settings(RouterSettings routing, Duration maxHoldTime) {
        public static Settings defaults(int maxWaiting) {
            return new Settings(RouterSettings.defaults().withMaxWaiting(maxWaiting), Duration.ofSeconds(60));
        }
    }

    private static final Duration TICK = Duration.ofMillis(50);
    /** Until a replica of a model reports its block size, its prompts are hashed with the common default. */
    private static final int DEFAULT_BLOCK_SIZE = 16;

    private final Settings settings;
    private final RoutingPolicy policy;
    private final Listener listener;
    private final LoadView view;
    private final AdmissionQueue queue;
    private final BlockHasher hasher = new BlockHasher();
    private final Map<String, ReplicaLoad> latest = new HashMap<>();
    private final Map<String, Long> receivedNanos = new HashMap<>();
    private final Map<String, Held> held = new HashMap<>();

    private record Held(Route route, long sinceNanos) {
    }

    /** @param subscribe called once with the ref that must receive every replica's load reports */
    public static Behavior<Command> create(Settings settings, RoutingPolicy policy, Listener listener,
                                           Consumer<ActorRef<ReplicaLoad>> subscribe) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, TICK);
            subscribe.accept(ctx.messageAdapter(ReplicaLoad.class, Report::new));
            return new RouterActor(ctx, settings, policy, listener);
        }));
    }

    private RouterActor(ActorContext<Command> context, Settings settings, RoutingPolicy policy, Listener listener) {
        super(context);
        this.settings = settings;
        this.policy = policy;
        this.listener = listener;
        this.view = new LoadView(context.getSelf().path().address().toString() + context.getSelf().path().name(),
                settings.routing());
        this.queue = new AdmissionQueue(settings.routing().maxWaiting());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Route.class, this::onRoute)
                .onMessage(Admit.class, a -> {
                    a.replyTo().tell(queue.size() < settings.routing().maxWaiting());
                    return this;
                })
                .onMessage(Cancel.class, c -> {
                    queue.abort(c.requestId());
                    held.remove(c.requestId());
                    return this;
                })
                .onMessage(GetReplicas.class, g -> {
                    g.replyTo().tell(state());
                    return this;
                })
                .onMessage(Broadcast.class, b -> {
                    latest.values().stream().filter(l -> l.identity().model().equals(b.model()))
                            .forEach(l -> l.engine().tell(b.command()));
                    return this;
                })
                .onMessage(Report.class, r -> onReport(r.load()))
                .onMessage(EngineGone.class, g -> onEngineGone(g.engine()))
                .onMessageEquals(Tick.INSTANCE, () -> {
                    expireHeld();
                    release();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onRoute(Route route) {
        Request r = route.request();
        for (String replica : r.excluded()) {
            view.remove(replica); // NOTE: back with its next report (a draining one reports itself unhealthy)
        }
        int blockSize = latest.values().stream().filter(l -> l.identity().model().equals(r.model()))
                .mapToInt(l -> l.report().blockSize()).findFirst().orElse(DEFAULT_BLOCK_SIZE);
        RouteRequest request = RouteRequest.of(r.requestId(), r.tenant(), r.priority(), r.model(), r.scope(),
                r.promptTokenIds(), blockSize, hasher);
        switch (queue.offer(request)) {
            case QUEUED -> {
                held.put(r.requestId(), new Held(route, System.nanoTime()));
                release();
            }
            case QUEUE_FULL -> route.replyTo().tell(new Refused(r.requestId(), "The server is overloaded: "
                    + queue.size() + " requests are waiting. Retry later."));
            case DUPLICATE -> route.replyTo().tell(new Refused(r.requestId(), "request id " + r.requestId()
                    + " is already waiting"));
        }
        return this;
    }

    private Behavior<Command> onReport(ReplicaLoad load) {
        String id = load.identity().replicaId();
        ReplicaLoad old = latest.get(id);
        if (old == null || !old.engine().equals(load.engine())) {
            getContext().watchWith(load.engine(), new EngineGone(load.engine()));
        }
        switch (view.apply(load.report(), System.nanoTime())) {
            case APPLIED -> {
                latest.put(id, load);
                receivedNanos.put(id, System.nanoTime());
            }
            case ASK_FOR_SNAPSHOT -> {
                latest.put(id, load);
                receivedNanos.put(id, System.nanoTime());
                load.engine().tell(Engine.SendSnapshot.INSTANCE);
            }
            case IGNORED_OLD -> { }
        }
        release();
        return this;
    }

    private Behavior<Command> onEngineGone(ActorRef<Engine.Command> engine) {
        for (Iterator<Map.Entry<String, ReplicaLoad>> it = latest.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            if (e.getValue().engine().equals(engine)) {
                view.remove(e.getKey());
                receivedNanos.remove(e.getKey());
                it.remove();
            }
        }
        return this;
    }

    /** Late binding: every held request that some replica has room for now goes there. */
    private void release() {
        if (queue.size() == 0) {
            return;
        }
        long now = System.nanoTime();
        for (AdmissionQueue.Placed p : queue.release(policy, view, now)) {
            Held h = held.remove(p.request().requestId());
            ReplicaLoad load = latest.get(p.send().replicaId());
            if (h == null) {
                continue;
            }
            if (load == null) {
                h.route().replyTo().tell(new Refused(p.request().requestId(), "The replica chosen went away. Retry."));
                continue;
            }
            String reason = p.send().reason().name();
            listener.routed(p.request().model(), reason, (now - h.sinceNanos()) / 1e9);
            h.route().replyTo().tell(new To(p.request().requestId(), load.engine(), p.send().replicaId(),
                    load.identity().node(), reason));
        }
    }

    private void expireHeld() {
        long limit = System.nanoTime() - settings.maxHoldTime().toNanos();
        for (Held h : List.copyOf(held.values())) {
            if (h.sinceNanos() < limit) {
                Request r = h.route().request();
                queue.abort(r.requestId());
                held.remove(r.requestId());
                boolean any = latest.values().stream().anyMatch(l -> l.identity().model().equals(r.model()));
                h.route().replyTo().tell(new Refused(r.requestId(), any ? "No replica of " + r.model()
                        + " had room within " + settings.maxHoldTime().toSeconds() + " s. Retry later."
                        : "No replica of " + r.model() + " is available."));
            }
        }
    }

    private State state() {
        List<ReplicaView> out = new ArrayList<>(latest.size());
        for (var e : latest.entrySet()) {
            out.add(new ReplicaView(e.getValue(), receivedNanos.getOrDefault(e.getKey(), 0L),
                    view.inflight(e.getKey())));
        }
        return new State(out, queue.size());
    }
}
