package io.kvass.scheduler.core;

import io.kvass.worker.sampling.SampledToken;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The tokens a step added to its sequences, as {@link BatchScheduler#update} applied them. Positional,
 * like the step's result: entry i is the result's i-th token, with the sequence that sampled it and the
 * finish that token caused. A step of a thousand decoding sequences so allocates one array, not an
 * update object per token.
 *
 * <p>NOTE: an entry is not {@link #applied} when its sequence was aborted (or ended by a stop string)
 * while the step ran; its token is dropped.
 */
public final class SequenceUpdates {
    private final List<SampledToken> tokens;
    private final SequenceState[] sequences;
    // NOTE: by position; a step ends one sequence or none, mostly, so a map rather than an array per step
    private Map<Integer, Finish> finishes = Map.of();

    SequenceUpdates(List<SampledToken> tokens) {
        this.tokens = tokens;
        this.sequences = new SequenceState[tokens.size()];
    }

    void set(int i, SequenceState seq, Optional<Finish> finish) {
        sequences[i] = seq;
        if (finish.isPresent()) {
            if (finishes.isEmpty()) {
                finishes = new HashMap<>();
            }
            finishes.put(i, finish.get());
        }
    }

    public int size() {
        return sequences.length;
    }

    public boolean applied(int i) {
        return sequences[i] != null;
    }

    public String requestId(int i) {
        return sequences[i].request().requestId();
    }

    /** Which of its request's n completions the sequence is. */
    public int index(int i) {
        return sequences[i].index();
    }

    public String seqId(int i) {
        return sequences[i].seqId();
    }

    /** How long entry i's sequence waited before its first step. */
    public long queuedNanos(int i) {
        return sequences[i].queuedNanos();
    }

    /** How long since entry i's sequence first ran, at {@code now}. */
    public long runningNanos(int i, long now) {
        return sequences[i].runningNanos(now);
    }

    public SampledToken token(int i) {
        return tokens.get(i);
    }

    public Optional<Finish> finish(int i) {
        return finishes.isEmpty() ? Optional.empty() : Optional.ofNullable(finishes.get(i));
    }
}
