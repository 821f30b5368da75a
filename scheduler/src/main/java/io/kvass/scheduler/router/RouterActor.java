package io.kvass.scheduler.router;

import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.ReplicaLoad;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A gateway's router: a thin shell over the replicas' load reports and a {@link ReplicaChooser}. Every
 * gateway has its own (no node whose loss stops routing); each hears every replica's {@link ReplicaLoad},
 * death-watches its engine, and holds a request until some replica has room for it (late binding).
 */
public final class RouterActor extends AbstractBehavior<RouterActor.Command> {

    public sealed interface Command {
    }

    /** Pick a replica for one engine request; the answer is a {@link Routed}. */
    public record Route(RouteRequest request, ActorRef<Routed> replyTo) implements Command {
    }

    /**
     * May a new request come in? False while this gateway already holds {@code maxHeld} requests, so that a
     * client hears 503 before its response starts (a streamed response cannot change its status later).
     */
    public record Admit(ActorRef<Boolean> replyTo) implements Command {
    }

    /** The requester went away while its request was held. */
    public record Cancel(String requestId) implements Command {
    }

    /** Every replica this gateway knows of, fresh or not, and how many requests it holds. */
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
     * @param excluded replicas not to use (one that just failed this request)
     */
    public record RouteRequest(String requestId, String model, int[] promptTokenIds, CacheScope scope, String tenant,
                               int priority, List<String> excluded) {
        public RouteRequest {
            excluded = List.copyOf(excluded);
        }
    }

    public sealed interface Routed {
        String requestId();
    }

    /** Send it to {@code engine}; {@code reason} says why this replica (for metrics). */
    public record To(String requestId, ActorRef<Engine.Command> engine, String replicaId, String node, String reason)
            implements Routed {
    }

    /** No replica will take it: the gateway's queue is full, or no replica served the model in time. */
    public record Refused(String requestId, String reason) implements Routed {
    }

    /**
     * @param maxHeld       requests held at once before new ones are refused (the gateway's waiting queue)
     * @param staleAfter    a replica whose last report is older than this is not used (its reports come every
     *                      {@link Engine#REPORT_INTERVAL}; a few missed ones mean it is gone or stuck)
     * @param maxHoldTime   a request held this long with no replica of its model at all is refused
     */
    public record Settings(int maxHeld, Duration staleAfter, Duration maxHoldTime) {
        public static Settings defaults(int maxHeld) {
            return new Settings(maxHeld, Duration.ofSeconds(2), Duration.ofSeconds(60));
        }
    }

    private static final Duration TICK = Duration.ofMillis(50);

    private final Settings settings;
    private final ReplicaChooser chooser;
    private final Map<String, ReplicaView> views = new HashMap<>();
    private final LinkedHashMap<String, Held> held = new LinkedHashMap<>();

    private record Held(Route route, long sinceNanos) {
    }

    /** @param subscribe called once with the ref that must receive every replica's load reports */
    public static Behavior<Command> create(Settings settings, ReplicaChooser chooser,
                                           Consumer<ActorRef<ReplicaLoad>> subscribe) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, TICK);
            subscribe.accept(ctx.messageAdapter(ReplicaLoad.class, Report::new));
            return new RouterActor(ctx, settings, chooser);
        }));
    }

    private RouterActor(ActorContext<Command> context, Settings settings, ReplicaChooser chooser) {
        super(context);
        this.settings = settings;
        this.chooser = chooser;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Route.class, this::onRoute)
                .onMessage(Admit.class, a -> {
                    a.replyTo().tell(held.size() < settings.maxHeld());
                    return this;
                })
                .onMessage(Cancel.class, c -> {
                    held.remove(c.requestId());
                    return this;
                })
                .onMessage(GetReplicas.class, g -> {
                    g.replyTo().tell(new State(List.copyOf(views.values()), held.size()));
                    return this;
                })
                .onMessage(Broadcast.class, b -> {
                    views.values().stream().filter(v -> v.load().identity().model().equals(b.model()))
                            .forEach(v -> v.load().engine().tell(b.command()));
                    return this;
                })
                .onMessage(Report.class, r -> onReport(r.load()))
                .onMessage(EngineGone.class, g -> onEngineGone(g.engine()))
                .onMessageEquals(Tick.INSTANCE, () -> {
                    releaseHeld();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onRoute(Route route) {
        Optional<ReplicaChooser.Choice> choice = chooser.choose(route.request(), fresh());
        if (choice.isPresent() && held.isEmpty()) {
            send(route, choice.get());
        } else if (held.size() >= settings.maxHeld()) {
            route.replyTo().tell(new Refused(route.request().requestId(), "The server is overloaded: " + held.size()
                    + " requests are waiting. Retry later."));
        } else {
            held.put(route.request().requestId(), new Held(route, System.nanoTime()));
            releaseHeld();
        }
        return this;
    }

    private Behavior<Command> onReport(ReplicaLoad load) {
        ReplicaView old = views.get(load.identity().replicaId());
        if (old != null && old.load().engine().equals(load.engine()) && old.load().seq() >= load.seq()) {
            return this; // reordered or duplicate
        }
        if (old == null || !old.load().engine().equals(load.engine())) {
            getContext().watchWith(load.engine(), new EngineGone(load.engine()));
        }
        views.put(load.identity().replicaId(), new ReplicaView(load, System.nanoTime(), 0));
        releaseHeld();
        return this;
    }

    private Behavior<Command> onEngineGone(ActorRef<Engine.Command> engine) {
        views.values().removeIf(v -> v.load().engine().equals(engine));
        return this;
    }

    /** Late binding: the oldest held requests go first, each as soon as some replica has room for it. */
    private void releaseHeld() {
        long now = System.nanoTime();
        for (Iterator<Held> it = held.values().iterator(); it.hasNext(); ) {
            Held h = it.next();
            List<ReplicaView> fresh = fresh();
            Optional<ReplicaChooser.Choice> choice = chooser.choose(h.route().request(), fresh);
            if (choice.isPresent()) {
                it.remove();
                send(h.route(), choice.get());
            } else if (now - h.sinceNanos() > settings.maxHoldTime().toNanos()) {
                it.remove();
                boolean any = fresh.stream().anyMatch(v -> v.load().identity().model().equals(h.route().request().model()));
                h.route().replyTo().tell(new Refused(h.route().request().requestId(), any ? "No replica of " + h.route().request().model()
                        + " had room within " + settings.maxHoldTime().toSeconds() + " s. Retry later."
                        : "No replica of " + h.route().request().model() + " is available."));
            }
        }
    }

    private void send(Route route, ReplicaChooser.Choice choice) {
        ReplicaView v = choice.replica();
        views.put(v.load().identity().replicaId(), v.withOneMoreInFlight());
        route.replyTo().tell(new To(route.request().requestId(), v.load().engine(), v.load().identity().replicaId(), v.load().identity().node(),
                choice.reason()));
    }

    private List<ReplicaView> fresh() {
        long now = System.nanoTime();
        List<ReplicaView> out = new ArrayList<>(views.size());
        for (ReplicaView v : views.values()) {
            if (now - v.receivedNanos() <= settings.staleAfter().toNanos()) {
                out.add(v);
            }
        }
        return out;
    }
}
