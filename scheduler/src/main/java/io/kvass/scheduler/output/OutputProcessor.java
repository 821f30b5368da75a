package io.kvass.scheduler.output;

import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.SequenceUpdates;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.tokenizer.IncrementalDetokenizer;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Turns sampled tokens into text, per completion: incremental detokenization (never splitting a
 * UTF-8 character) and stop strings. A stop string ends the sequence, which it reports through
 * {@code onStopString} so the scheduler frees the sequence's blocks.
 */
public final class OutputProcessor {
    private final Tokenizer tokenizer;
    private final Map<String, Completion> completions = new HashMap<>();

    private static final class Completion {
        final IncrementalDetokenizer detokenizer;
        final StopStringMatcher stops;
        final int promptTokens;
        int completionTokens;

        Completion(IncrementalDetokenizer detokenizer, StopStringMatcher stops, int promptTokens) {
            this.detokenizer = detokenizer;
            this.stops = stops;
            this.promptTokens = promptTokens;
        }
    }

    public OutputProcessor(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Registers completion {@code seqId} before its first token. */
    public void track(String seqId, int[] promptTokenIds, SamplingParams params) {
        track(seqId, promptTokenIds, params, new int[0]);
    }

    /**
     * As above, for a completion that already produced {@code resumed} elsewhere: they go through the detokenizer
     * and the stop-string matcher as they did there (which rebuilds what the matcher held back), and what that
     * released is not released again.
     */
    public void track(String seqId, int[] promptTokenIds, SamplingParams params, int[] resumed) {
        Completion c = new Completion(new IncrementalDetokenizer(tokenizer, promptTokenIds, params.skipSpecialTokens()),
                new StopStringMatcher(params.stop()), promptTokenIds.length);
        for (int token : resumed) {
            c.stops.offer(c.detokenizer.next(token));
        }
        c.completionTokens = resumed.length;
        completions.put(seqId, c);
    }

    public void forget(String seqId) {
        completions.remove(seqId);
    }

    public List<RequestOutput> process(SequenceUpdates updates, Consumer<String> onStopString) {
        List<RequestOutput> outputs = new ArrayList<>(updates.size());
        long now = System.nanoTime();
        for (int i = 0; i < updates.size(); i++) {
            if (!updates.applied(i)) {
                continue; // its sequence ended while the step ran
            }
            String seqId = updates.seqId(i);
            Completion c = completions.get(seqId);
            if (c == null) {
                continue; // aborted
            }
            SampledToken token = updates.token(i);
            c.completionTokens++;
            StopStringMatcher.Match match = c.stops.offer(c.detokenizer.next(token.tokenId()));
            String text = match.text();
            Optional<Finish> finish = updates.finish(i);
            if (match.stop().isPresent() && finish.map(f -> f.reason() != FinishReason.STOP).orElse(true)) {
                finish = Optional.of(new Finish(FinishReason.STOP, Optional.of(match.stop().get())));
                onStopString.accept(seqId);
            } else if (finish.isPresent() && match.stop().isEmpty()) {
                text = text + c.stops.offer(c.detokenizer.flush()).text() + c.stops.flush();
            }
            if (finish.isPresent()) {
                completions.remove(seqId);
            }
            outputs.add(new RequestOutput(updates.requestId(i), updates.index(i), List.of(token), text, finish,
                    c.promptTokens, c.completionTokens, updates.queuedNanos(i), updates.runningNanos(i, now)));
        }
        return outputs;
    }
}
