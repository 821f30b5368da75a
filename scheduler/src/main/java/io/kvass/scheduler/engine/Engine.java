package io.kvass.scheduler.engine;

import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SequenceUpdates;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.scheduler.router.AdapterTier;
import io.kvass.scheduler.router.LoadReport;
import io.kvass.scheduler.router.ReplicaReporter;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import io.kvass.worker.wire.CrossNode;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * One model replica's engine: a thin actor over {@link EngineCore}. Each step reads
 * {@code plan → execute (off-thread) → update → (next plan → execute) → outputs → stream}: a step's
 * tokens are detokenized and streamed while the next step runs. Requests that arrive meanwhile are
 * queued in the core and join the next step (continuous batching).
 */
public final class Engine extends AbstractBehavior<Engine.Command> {

    public sealed interface Command {
    }

    /**
     * Queue a request; {@code replyTo} receives {@link Event}s until the last completion finishes.
     *
     * @param adapter the request's LoRA adapter, loaded first when this replica has not seen it
     */
    public record Submit(Request request, Optional<AdapterSource> adapter, ActorRef<Event> replyTo)
            implements Command, CrossNode {
        public Submit(Request request, ActorRef<Event> replyTo) {
            this(request, Optional.empty(), replyTo);
        }
    }

    /** vLLM's unload: new requests for the adapter are refused here, running ones finish. */
    public record UnloadAdapter(String name) implements Command, CrossNode {
    }

    /** The client went away: free everything of this request now. */
    public record Abort(String requestId) implements Command, CrossNode {
    }

    public record GetStats(ActorRef<EngineStats> replyTo) implements Command, CrossNode {
    }

    /**
     * Stop taking requests (new ones hear {@link Unavailable}); let the running ones finish, then stop.
     * Scale-down, node drain and shard hand-off all end a replica this way.
     */
    public enum Drain implements Command, CrossNode {
        INSTANCE
    }

    /**
     * Stop at once, handing every request back (each hears {@link Unavailable} and its stream continues on another
     * replica from the tokens it delivered): a drain that does not wait for running requests.
     */
    public enum Evacuate implements Command, CrossNode {
        INSTANCE
    }

    /** A gateway missed a prefix-cache delta: the next report carries the whole cache. */
    public enum SendSnapshot implements Command, CrossNode {
        INSTANCE
    }

    /** An adapter finished loading (or failed to): requests waiting for it may run now. */
    public enum AdaptersChanged implements Command {
        INSTANCE
    }

    private record StepDone(StepPlan plan, StepResult result, Throwable failure) implements Command {
    }

    private record ResetDone(Throwable failure) implements Command {
    }

    private record AdapterLoaded(Submit submit, Throwable failure) implements Command {
    }

    private enum Report implements Command {
        INSTANCE
    }

    private enum ReportSoon implements Command {
        INSTANCE
    }

    /** What a requester hears about its request. */
    public sealed interface Event {
    }

    /** New tokens and text of one completion; the last one carries the finish. */
    public record Output(RequestOutput output) implements Event, CrossNode {
    }

    /** The request can never run here (too long for the model or the KV pool, duplicate id). */
    public record Rejected(String requestId, String reason) implements Event, CrossNode {
    }

    /** The engine could not complete the request (the worker failed repeatedly). */
    public record Failed(String requestId, String reason) implements Event, CrossNode {
    }

    /**
     * This replica will not run (or finish) the request: it is draining, or its engine is restarting. Nothing
     * is wrong with the request; the requester sends it elsewhere.
     */
    public record Unavailable(String requestId, String reason) implements Event, CrossNode {
    }

    private static final int MAX_CONSECUTIVE_STEP_FAILURES = 3;
    /**
     * How often gateways hear this engine's load at least (their staleness bound is a few of these). A change
     * (a request in or out) is reported at once, but never more often than every {@link #REPORT_MIN_GAP}.
     */
    public static final Duration REPORT_INTERVAL = Duration.ofMillis(200);
    public static final Duration REPORT_MIN_GAP = Duration.ofMillis(25);

    private final EngineCore core;
    private final StepExecutor executor;
    private final EngineIdentity identity;
    private final AdapterRegistry adapters;
    private final Optional<ActorRef<ReplicaLoad>> reports;
    private final Map<String, Subscriber> subscribers = new HashMap<>();
    private boolean stepInFlight;
    private boolean draining;
    private int consecutiveFailures;
    private final ReplicaReporter reporter;
    private long lastReportNanos;
    private boolean reportScheduled;
    private final TimerScheduler<Command> timers;
    private final IterationTokens.Recorder iterationTokens = new IterationTokens.Recorder();

    private record Subscriber(ActorRef<Event> replyTo, int unfinished, int n) {
    }

    /** An engine that reports to no one (offline use, tests). */
    public static Behavior<Command> create(EngineCore core, StepExecutor executor) {
        return create(core, executor, EngineIdentity.local("model", core.scheduler().config().maxNumSeqs()),
                AdapterRegistry.NONE, Optional.empty());
    }

    /** @param reports where its {@link ReplicaLoad} goes every {@link #REPORT_INTERVAL} (the gateways' topic) */
    public static Behavior<Command> create(EngineCore core, StepExecutor executor, EngineIdentity identity,
                                           AdapterRegistry adapters, Optional<ActorRef<ReplicaLoad>> reports) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            if (reports.isPresent()) {
                timers.startTimerWithFixedDelay(Report.INSTANCE, REPORT_INTERVAL);
            }
            return new Engine(ctx, timers, core, executor, identity, adapters, reports);
        }));
    }

    private Engine(ActorContext<Command> context, TimerScheduler<Command> timers, EngineCore core, StepExecutor executor,
                   EngineIdentity identity, AdapterRegistry adapters, Optional<ActorRef<ReplicaLoad>> reports) {
        super(context);
        this.timers = timers;
        this.core = core;
        this.executor = executor;
        this.identity = identity;
        this.adapters = adapters;
        // NOTE: a restarted engine is a new epoch: gateways drop what they knew of its cache and ask for a snapshot.
        this.reporter = new ReplicaReporter(identity.replicaId(), identity.node(), identity.model(),
                System.currentTimeMillis());
        this.reports = reports;
        ActorRef<Command> self = context.getSelf();
        core.scheduler().adapterGate().addListener(() -> self.tell(AdaptersChanged.INSTANCE));
        report();
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Submit.class, this::onSubmit)
                .onMessage(Abort.class, this::onAbort)
                .onMessage(GetStats.class, this::onGetStats)
                .onMessage(StepDone.class, this::onStepDone)
                .onMessage(ResetDone.class, this::onResetDone)
                .onMessage(AdapterLoaded.class, this::onAdapterLoaded)
                .onMessage(UnloadAdapter.class, u -> {
                    adapters.unload(u.name());
                    return this;
                })
                .onMessageEquals(AdaptersChanged.INSTANCE, () -> {
                    startStepIfIdle();
                    return this;
                })
                .onMessageEquals(Drain.INSTANCE, this::onDrain)
                .onMessageEquals(Evacuate.INSTANCE, () -> {
                    getContext().getLog().info("replica {} evacuating: {} requests continue elsewhere",
                            identity.replicaId(), subscribers.size());
                    for (var e : List.copyOf(subscribers.entrySet())) {
                        core.abort(e.getKey(), e.getValue().n());
                    }
                    releaseAll("replica " + identity.replicaId() + " is draining; continue elsewhere");
                    draining = true;
                    report();
                    return next();
                })
                .onMessageEquals(SendSnapshot.INSTANCE, () -> {
                    reporter.onSnapshotAsked();
                    reportChange();
                    return this;
                })
                .onMessageEquals(Report.INSTANCE, () -> {
                    report();
                    return this;
                })
                .onMessageEquals(ReportSoon.INSTANCE, () -> {
                    reportScheduled = false;
                    report();
                    return this;
                })
                .onSignal(PreRestart.class, s -> {
                    releaseAll("the replica's engine is restarting");
                    executor.close();
                    return this;
                })
                .onSignal(PostStop.class, s -> {
                    releaseAll("the replica stopped");
                    executor.close();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onDrain() {
        if (!draining) {
            getContext().getLog().info("replica {} draining: {} requests still running", identity.replicaId(),
                    subscribers.size());
        }
        draining = true;
        report();
        return next();
    }

    /** Every requester still waiting hears that it must go elsewhere (nothing of theirs is lost: they hold it). */
    private void releaseAll(String reason) {
        for (var e : subscribers.entrySet()) {
            e.getValue().replyTo().tell(new Unavailable(e.getKey(), reason));
        }
        subscribers.clear();
    }

    /** A request came or went: tell the gateways now, or as soon as the minimum gap allows. */
    private void reportChange() {
        if (reports.isEmpty() || reportScheduled) {
            return;
        }
        long wait = REPORT_MIN_GAP.toNanos() - (System.nanoTime() - lastReportNanos);
        if (wait <= 0) {
            report();
        } else {
            reportScheduled = true;
            timers.startSingleTimer(ReportSoon.INSTANCE, Duration.ofNanos(wait));
        }
    }

    private void report() {
        if (reports.isEmpty()) {
            return;
        }
        lastReportNanos = System.nanoTime();
        var kv = core.scheduler().kvCache();
        EngineStats stats = stats();
        List<AdapterResidency> residency = adapters.residency();
        Map<Long, AdapterTier> tiers = new HashMap<>();
        for (AdapterResidency a : residency) {
            switch (a.tier()) {
                case "device" -> tiers.put(a.id(), AdapterTier.DEVICE);
                case "host" -> tiers.put(a.id(), AdapterTier.HOST);
                default -> { }
            }
        }
        LoadReport routing = reporter.next(new ReplicaReporter.Load(kv.blockSize(), stats.numFreeKvBlocks(),
                        stats.numKvBlocks(), stats.numRunning(), stats.numWaiting(), identity.maxNumSeqs()), tiers,
                kv.drainPrefixCacheUpdate(reporter.takeSnapshotRequest()), !draining, System.currentTimeMillis());
        reports.get().tell(new ReplicaLoad(getContext().getSelf(), identity, stats, residency, routing));
    }

    private Behavior<Command> onSubmit(Submit submit) {
        Request r = submit.request();
        if (draining) {
            submit.replyTo().tell(new Unavailable(r.requestId(), "replica " + identity.replicaId() + " is draining"));
            return this;
        }
        if (submit.adapter().isPresent() && !adapters.knows(submit.adapter().get().id())) {
            getContext().pipeToSelf(adapters.load(submit.adapter().get()), (ok, f) -> new AdapterLoaded(submit, f));
            return this;
        }
        return admit(submit);
    }

    private Behavior<Command> onAdapterLoaded(AdapterLoaded loaded) {
        Submit submit = loaded.submit();
        if (loaded.failure() != null) {
            Throwable cause = loaded.failure() instanceof java.util.concurrent.CompletionException c && c.getCause() != null
                    ? c.getCause() : loaded.failure();
            submit.replyTo().tell(new Rejected(submit.request().requestId(), cause.getMessage()));
            return this;
        }
        return draining ? onSubmit(submit) : admit(submit);
    }

    private Behavior<Command> admit(Submit submit) {
        Request r = submit.request();
        try {
            core.add(r);
        } catch (IllegalArgumentException e) {
            submit.replyTo().tell(new Rejected(r.requestId(), e.getMessage()));
            return this;
        }
        subscribers.put(r.requestId(), new Subscriber(submit.replyTo(), r.params().n(), r.params().n()));
        startStepIfIdle();
        return next();
    }

    private Behavior<Command> onAbort(Abort abort) {
        Subscriber s = subscribers.remove(abort.requestId());
        if (s != null) {
            core.abort(abort.requestId(), s.n());
        }
        return next();
    }

    /** A draining engine stops once its last request is done and no step is in flight. */
    private Behavior<Command> next() {
        reportChange();
        return draining && subscribers.isEmpty() && !stepInFlight ? Behaviors.stopped() : this;
    }

    private Behavior<Command> onGetStats(GetStats get) {
        get.replyTo().tell(stats());
        return this;
    }

    private Behavior<Command> onStepDone(StepDone done) {
        stepInFlight = false;
        if (done.failure() != null) {
            onStepFailure(done.failure());
            return this;
        }
        consecutiveFailures = 0;
        SequenceUpdates updates = core.update(done.plan(), done.result());
        // NOTE: the next step goes to the worker first, so this step's outputs (detokenization, stop strings,
        // streaming) are made while it runs instead of before it
        startStepIfIdle();
        deliver(core.outputs(updates));
        startStepIfIdle(); // a stop string may have freed blocks that a waiting request needs
        return next();
    }

    private Behavior<Command> onResetDone(ResetDone done) {
        stepInFlight = false;
        if (done.failure() != null) {
            getContext().getLog().error("the worker could not reset after a failed step", done.failure());
        }
        startStepIfIdle();
        return next();
    }

    /**
     * NOTE: no request is lost: running sequences are recomputed from their tokens on the next step. The worker
     * resets off this thread; no step starts until it has (stepInFlight stays set).
     */
    private void onStepFailure(Throwable failure) {
        consecutiveFailures++;
        getContext().getLog().error("step failed ({} in a row); re-queuing running sequences", consecutiveFailures, failure);
        stepInFlight = true;
        getContext().pipeToSelf(executor.reset(), (ok, f) -> new ResetDone(f));
        core.scheduler().requeueAllRunning();
        if (consecutiveFailures >= MAX_CONSECUTIVE_STEP_FAILURES) {
            String reason = "the model worker failed " + consecutiveFailures + " steps in a row: " + failure.getMessage();
            for (var e : List.copyOf(subscribers.entrySet())) {
                core.abort(e.getKey(), e.getValue().n());
                e.getValue().replyTo().tell(new Failed(e.getKey(), reason));
            }
            subscribers.clear();
            consecutiveFailures = 0;
        }
    }

    private void deliver(List<RequestOutput> outputs) {
        for (RequestOutput o : outputs) {
            Subscriber s = subscribers.get(o.requestId());
            if (s == null) {
                continue;
            }
            s.replyTo().tell(new Output(o));
            if (o.finished()) {
                if (s.unfinished() == 1) {
                    subscribers.remove(o.requestId());
                } else {
                    subscribers.put(o.requestId(), new Subscriber(s.replyTo(), s.unfinished() - 1, s.n()));
                }
            }
        }
    }

    private void startStepIfIdle() {
        if (stepInFlight || !core.hasWork()) {
            return;
        }
        StepPlan plan = core.plan();
        for (var f : core.drainFailures()) {
            Subscriber s = subscribers.remove(f.requestId());
            if (s != null) {
                s.replyTo().tell(new Failed(f.requestId(), f.reason()));
            }
        }
        if (EngineCore.isIdle(plan)) {
            return; // only requests waiting for an adapter to load: AdaptersChanged wakes us
        }
        stepInFlight = true;
        iterationTokens.record(plan.numScheduledTokens());
        getContext().pipeToSelf(executor.execute(plan), (result, failure) -> new StepDone(plan, result, failure));
    }

    private EngineStats stats() {
        var kv = core.scheduler().kvCache();
        var prefix = kv.prefixCacheStats();
        return new EngineStats(core.scheduler().numRunning(), core.scheduler().numWaiting(), kv.numTotalBlocks(),
                kv.numFreeBlocks(), kv.usage(), prefix.queries(), prefix.hits(), core.scheduler().numPreemptions(),
                iterationTokens.snapshot(), kv.blockSize(), core.scheduler().config().enablePrefixCaching());
    }
}
