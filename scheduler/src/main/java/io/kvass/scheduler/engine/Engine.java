package io.kvass.scheduler.engine;

import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SequenceUpdates;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One model replica's engine: a thin actor over {@link EngineCore}. Each step reads
 * {@code plan → execute (off-thread) → update → (next plan → execute) → outputs → stream}: a step's
 * tokens are detokenized and streamed while the next step runs. Requests that arrive meanwhile are
 * queued in the core and join the next step (continuous batching).
 */
public final class Engine extends AbstractBehavior<Engine.Command> {

    public sealed interface Command {
    }

    /** Queue a request; {@code replyTo} receives {@link Event}s until the last completion finishes. */
    public record Submit(Request request, ActorRef<Event> replyTo) implements Command {
    }

    /** The client went away: free everything of this request now. */
    public record Abort(String requestId) implements Command {
    }

    public record GetStats(ActorRef<EngineStats> replyTo) implements Command {
    }

    /** An adapter finished loading (or failed to): requests waiting for it may run now. */
    public enum AdaptersChanged implements Command {
        INSTANCE
    }

    private record StepDone(StepPlan plan, StepResult result, Throwable failure) implements Command {
    }

    /** What a requester hears about its request. */
    public sealed interface Event {
    }

    /** New tokens and text of one completion; the last one carries the finish. */
    public record Output(RequestOutput output) implements Event {
    }

    /** The request can never run here (too long for the model or the KV pool, duplicate id). */
    public record Rejected(String requestId, String reason) implements Event {
    }

    /** The engine could not complete the request (the worker failed repeatedly). */
    public record Failed(String requestId, String reason) implements Event {
    }

    private static final int MAX_CONSECUTIVE_STEP_FAILURES = 3;

    private final EngineCore core;
    private final StepExecutor executor;
    private final Map<String, Subscriber> subscribers = new HashMap<>();
    private boolean stepInFlight;
    private int consecutiveFailures;
    private final IterationTokens.Recorder iterationTokens = new IterationTokens.Recorder();

    private record Subscriber(ActorRef<Event> replyTo, int unfinished, int n) {
    }

    public static Behavior<Command> create(EngineCore core, StepExecutor executor) {
        return Behaviors.setup(ctx -> new Engine(ctx, core, executor));
    }

    private Engine(ActorContext<Command> context, EngineCore core, StepExecutor executor) {
        super(context);
        this.core = core;
        this.executor = executor;
        ActorRef<Command> self = context.getSelf();
        core.scheduler().adapterGate().addListener(() -> self.tell(AdaptersChanged.INSTANCE));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Submit.class, this::onSubmit)
                .onMessage(Abort.class, this::onAbort)
                .onMessage(GetStats.class, this::onGetStats)
                .onMessage(StepDone.class, this::onStepDone)
                .onMessageEquals(AdaptersChanged.INSTANCE, () -> {
                    startStepIfIdle();
                    return this;
                })
                .onSignal(PostStop.class, s -> {
                    executor.close();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onSubmit(Submit submit) {
        Request r = submit.request();
        try {
            core.add(r);
        } catch (IllegalArgumentException e) {
            submit.replyTo().tell(new Rejected(r.requestId(), e.getMessage()));
            return this;
        }
        subscribers.put(r.requestId(), new Subscriber(submit.replyTo(), r.params().n(), r.params().n()));
        startStepIfIdle();
        return this;
    }

    private Behavior<Command> onAbort(Abort abort) {
        Subscriber s = subscribers.remove(abort.requestId());
        if (s != null) {
            core.abort(abort.requestId(), s.n());
        }
        return this;
    }

    private Behavior<Command> onGetStats(GetStats get) {
        get.replyTo().tell(stats());
        return this;
    }

    private Behavior<Command> onStepDone(StepDone done) {
        stepInFlight = false;
        if (done.failure() != null) {
            onStepFailure(done.failure());
        } else {
            consecutiveFailures = 0;
            SequenceUpdates updates = core.update(done.plan(), done.result());
            // NOTE: the next step goes to the worker first, so this step's outputs (detokenization, stop strings,
            // streaming) are made while it runs instead of before it
            startStepIfIdle();
            deliver(core.outputs(updates));
        }
        startStepIfIdle(); // a stop string may have freed blocks that a waiting request needs
        return this;
    }

    /** NOTE: no request is lost: running sequences are recomputed from their tokens on the next step. */
    private void onStepFailure(Throwable failure) {
        consecutiveFailures++;
        getContext().getLog().error("step failed ({} in a row); re-queuing running sequences", consecutiveFailures, failure);
        executor.reset();
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
