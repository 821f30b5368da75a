package io.kvass.http.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.http.RequestedModel;
import io.kvass.http.ServedModel;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.Usage;
import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.IdTokenizer;
import java.util.List;
import java.util.Optional;
import org.apache.pekko.actor.typed.RecipientRef;
import org.junit.jupiter.api.Test;

/** The bookkeeping behind a request stream, without actors. */
class JobProgressTest {
    private static final RecipientRef<io.kvass.scheduler.router.RouterActor.Command> NOWHERE = message -> { };
    private static final ServedModel MODEL = new ServedModel("m", "/m", new IdTokenizer(64), Optional.empty(), 64, 64,
            NOWHERE);

    private static GenerationJob job(int prompts, int n) {
        List<GenerationJob.Prompt> list = java.util.stream.IntStream.range(0, prompts)
                .mapToObj(i -> new GenerationJob.Prompt(new int[] {1, 2, 3}, "", SamplingParams.greedy(4))).toList();
        return new GenerationJob(GenerationJob.Kind.COMPLETION, "cmpl-x", 0, RequestedModel.base(MODEL), list, n, true, true, false, 0);
    }

    private static RequestOutput out(String id, int index, int completionTokens, boolean last) {
        return new RequestOutput(id, index, List.of(new SampledToken(7, Float.NaN, List.of())), "a",
                last ? Optional.of(Finish.of(FinishReason.LENGTH)) : Optional.empty(), 3, completionTokens);
    }

    @Test
    void numbersChoicesPromptMajorAndCountsUsage() {
        GenerationJob job = job(2, 2);
        JobProgress p = new JobProgress(job);
        var first = p.record(out("cmpl-x-1", 1, 1, false), 100).orElseThrow();
        assertEquals(3, first.choice());
        assertTrue(first.firstOfPrompt());
        var second = p.record(out("cmpl-x-1", 0, 1, false), 150).orElseThrow();
        assertFalse(second.firstOfPrompt());
        assertEquals(50, second.nanosSincePrevious());
        assertTrue(p.record(out("other", 0, 1, false), 160).isEmpty(), "not this job's request");
        p.record(out("cmpl-x-1", 0, 2, true), 200);
        p.record(out("cmpl-x-1", 1, 2, true), 200);
        assertTrue(p.record(out("cmpl-x-1", 1, 3, false), 210).isEmpty(), "nothing after a choice's finish");
        assertEquals(List.of("cmpl-x-0"), p.unfinishedRequests());
        assertEquals(2, p.unfinishedChoices());
        p.record(out("cmpl-x-0", 0, 4, true), 300);
        p.record(out("cmpl-x-0", 1, 4, true), 300);
        assertTrue(p.done());
        assertEquals(new Usage(6, 12), p.usage());
    }

    @Test
    void abortEndsEveryRunningChoiceOnce() {
        JobProgress p = new JobProgress(job(1, 3));
        p.record(out("cmpl-x-0", 1, 2, true), 10);
        p.record(out("cmpl-x-0", 0, 1, false), 10);
        var aborted = p.abortAll();
        assertEquals(List.of(0, 2), aborted.stream().map(JobProgress.Aborted::choice).sorted().toList());
        aborted.forEach(a -> assertEquals(FinishReason.ABORT, a.output().finish().orElseThrow().reason()));
        assertTrue(p.done());
        assertTrue(p.unfinishedRequests().isEmpty());
        assertTrue(p.abortAll().isEmpty());
        assertEquals(new Usage(3, 3), p.usage());
    }
}
