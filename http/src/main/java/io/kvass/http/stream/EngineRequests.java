package io.kvass.http.stream;

import io.kvass.http.api.GenerationJob;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.random.RandomGenerator;

/**
 * The engine requests behind one API request, and what a migration needs: every prompt's seed (the client's,
 * or one drawn here, so that a completion continued elsewhere samples what it would have), the tokens each
 * completion delivered to the client, and the continuations submitted after a replica was lost. Plain logic
 * that {@link RequestStream} drives.
 *
 * <p>A prompt's first engine request runs all its {@code n} completions; a continuation runs one completion
 * (n = 1, the child's own seed) from the prompt plus the tokens that completion delivered, so its outputs are
 * the ones the lost replica would have sent next.
 */
final class EngineRequests {

    /** Which prompt an engine request serves, and which of its completions ({@code -1}: all of them). */
    record Target(int prompt, int child) {
    }

    private final GenerationJob job;
    private final SamplingParams[] params;
    private final int migrationLimit;
    private final Map<String, Target> targets = new HashMap<>();
    private final Map<String, List<Integer>> delivered = new HashMap<>();
    private final Map<String, Integer> migrations = new HashMap<>();
    private final Set<String> ids = new LinkedHashSet<>();

    EngineRequests(GenerationJob job, RandomGenerator random, int migrationLimit) {
        this.job = job;
        this.migrationLimit = migrationLimit;
        this.params = new SamplingParams[job.prompts().size()];
        for (int p = 0; p < params.length; p++) {
            SamplingParams given = job.prompts().get(p).params();
            params[p] = given.seed().isPresent() ? given : given.toBuilder().seed(random.nextLong()).build();
            targets.put(job.engineRequestId(p), new Target(p, -1));
            ids.add(job.engineRequestId(p));
        }
    }

    Optional<Target> target(String engineId) {
        return Optional.ofNullable(targets.get(engineId));
    }

    /** Every engine request id this API request has used (to abort or cancel them all). */
    Set<String> all() {
        return ids;
    }

    /** The engine request {@code engineId} as a replica runs it. */
    Request request(String engineId, long arrivalNanos) {
        Target t = targets.get(engineId);
        GenerationJob.Prompt prompt = job.prompts().get(t.prompt());
        if (t.child() < 0) {
            return new Request(engineId, prompt.tokenIds(), params[t.prompt()], job.model().scope(), 0, job.priority(),
                    arrivalNanos);
        }
        int[] resumed = delivered.getOrDefault(key(t.prompt(), t.child()), List.of()).stream()
                .mapToInt(Integer::intValue).toArray();
        return new Request(engineId, prompt.tokenIds(), params[t.prompt()].forChild(t.child()), job.model().scope(), 0,
                job.priority(), arrivalNanos, resumed);
    }

    /** {@code o} as the client's view has it: the prompt's engine request id and the completion's index. */
    RequestOutput translate(RequestOutput o) {
        Target t = targets.get(o.requestId());
        if (t == null || t.child() < 0) {
            return o;
        }
        return new RequestOutput(job.engineRequestId(t.prompt()), t.child(), o.tokens(), o.text(), o.finish(),
                o.promptTokens(), o.completionTokens());
    }

    /** Records the tokens of {@code o} (translated) as delivered to the client. */
    void delivered(RequestOutput o) {
        Target t = targets.get(o.requestId());
        List<Integer> tokens = delivered.computeIfAbsent(key(t.prompt(), o.index()), k -> new ArrayList<>());
        for (SampledToken s : o.tokens()) {
            tokens.add(s.tokenId());
        }
    }

    int deliveredTokens(int prompt, int child) {
        return delivered.getOrDefault(key(prompt, child), List.of()).size();
    }

    /**
     * Continuations for the unfinished completions {@code children} of the engine request {@code lost}; empty when
     * one of them has been migrated {@code migrationLimit} times already.
     */
    Optional<List<String>> migrate(String lost, List<Integer> children) {
        Target t = targets.get(lost);
        List<String> out = new ArrayList<>();
        for (int child : children) {
            String key = key(t.prompt(), child);
            int n = migrations.merge(key, 1, Integer::sum);
            if (n > migrationLimit) {
                return Optional.empty();
            }
            String id = job.engineRequestId(t.prompt()) + "~m" + n + "#" + child;
            targets.put(id, new Target(t.prompt(), child));
            ids.add(id);
            out.add(id);
        }
        return Optional.of(out);
    }

    private static String key(int prompt, int child) {
        return prompt + "#" + child;
    }
}
