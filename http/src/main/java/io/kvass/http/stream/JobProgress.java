package io.kvass.http.stream;

import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.Usage;
import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.output.RequestOutput;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where one API request stands: per engine request (one per prompt) which completions finished, how
 * many tokens each produced, when its last output came. Plain logic that {@link RequestStream} drives.
 */
final class JobProgress {

    /** What one output meant. */
    record Step(int choice, boolean firstOfPrompt, long nanosSincePrevious, boolean finishedChoice) {
    }

    /** A completion ended by an abort: its choice index and the output that ends it. */
    record Aborted(int choice, RequestOutput output) {
    }

    private static final class Prompt {
        final int index;
        final int[] completionTokens;
        final boolean[] finished;
        int unfinished;
        long lastOutputNanos = -1;

        Prompt(int index, int n) {
            this.index = index;
            this.completionTokens = new int[n];
            this.finished = new boolean[n];
            this.unfinished = n;
        }
    }

    private final GenerationJob job;
    private final Map<String, Prompt> prompts = new HashMap<>();
    private int unfinished;

    JobProgress(GenerationJob job) {
        this.job = job;
        for (int p = 0; p < job.prompts().size(); p++) {
            prompts.put(job.engineRequestId(p), new Prompt(p, job.n()));
            unfinished += job.n();
        }
    }

    /** Records {@code o}; empty for an output of no request of this job, or of a choice already ended. */
    Optional<Step> record(RequestOutput o, long nowNanos) {
        Prompt p = prompts.get(o.requestId());
        if (p == null || o.index() < 0 || o.index() >= job.n() || p.finished[o.index()]) {
            return Optional.empty();
        }
        boolean first = p.lastOutputNanos < 0;
        long since = first ? 0 : nowNanos - p.lastOutputNanos;
        p.lastOutputNanos = nowNanos;
        p.completionTokens[o.index()] = o.completionTokens();
        if (o.finished()) {
            p.finished[o.index()] = true;
            p.unfinished--;
            unfinished--;
        }
        return Optional.of(new Step(job.choiceIndex(p.index, o.index()), first, since, o.finished()));
    }

    /** True while no token of engine request {@code requestId} has reached the client (it can start over anywhere). */
    boolean nothingDelivered(String requestId) {
        Prompt p = prompts.get(requestId);
        return p != null && p.lastOutputNanos < 0;
    }

    boolean done() {
        return unfinished == 0;
    }

    int unfinishedChoices() {
        return unfinished;
    }

    /** The engine requests with a completion still running. */
    List<String> unfinishedRequests() {
        return prompts.entrySet().stream().filter(e -> e.getValue().unfinished > 0).map(Map.Entry::getKey).toList();
    }

    /** Ends every running completion with finish_reason "abort", returning the outputs that say so. */
    List<Aborted> abortAll() {
        List<Aborted> outputs = new ArrayList<>();
        for (var e : prompts.entrySet()) {
            Prompt p = e.getValue();
            for (int i = 0; i < job.n(); i++) {
                if (!p.finished[i]) {
                    p.finished[i] = true;
                    outputs.add(new Aborted(job.choiceIndex(p.index, i), new RequestOutput(e.getKey(), i, List.of(), "",
                            Optional.of(Finish.of(FinishReason.ABORT)), job.prompts().get(p.index).tokenIds().length,
                            p.completionTokens[i])));
                }
            }
            p.unfinished = 0;
        }
        unfinished = 0;
        return outputs;
    }

    /** Prompt tokens once per prompt, completion tokens of every choice so far. */
    Usage usage() {
        int prompt = 0;
        int completion = 0;
        for (Prompt p : prompts.values()) {
            prompt += job.prompts().get(p.index).tokenIds().length;
            for (int c : p.completionTokens) {
                completion += c;
            }
        }
        return new Usage(prompt, completion);
    }
}
