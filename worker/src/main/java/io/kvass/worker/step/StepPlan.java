package io.kvass.worker.step;

import io.kvass.worker.wire.CrossNode;
import java.util.List;

/**
 * What the scheduler asks of the worker for one step: ids and primitives only, so it can cross
 * nodes as is. Full data for new sequences, deltas for the rest (vLLM v1's SchedulerOutput).
 *
 * <p>NOTE: the lists are kept as given, not copied: whoever builds a plan hands them over, unmodifiable, and
 * never changes them again. The scheduler builds fresh ones each step; copying its list of a thousand
 * continuing sequences cost 4 KB and a pass over them per step.
 *
 * @param dropped     sequences finished, aborted or preempted since the last plan: forget them
 * @param copySrc     copy-on-write block copies to run before the step ({@code copySrc[i] -> copyDst[i]})
 */
public record StepPlan(long stepId, List<NewSequence> newSequences, List<ContinuingSequence> continuing,
                       List<String> dropped, int[] copySrc, int[] copyDst) implements CrossNode {

    public int numSequences() {
        return newSequences.size() + continuing.size();
    }

    public int numScheduledTokens() {
        return newSequences.stream().mapToInt(NewSequence::numScheduledTokens).sum()
                + continuing.stream().mapToInt(ContinuingSequence::numScheduledTokens).sum();
    }
}
