package io.kvass.worker.step;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SequenceSamplingState;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The worker's side of a step: keeps each sequence's tokens, block table and sampler state, turns
 * a {@link StepPlan} into one backend forward pass and samples (on the backend's device where it
 * can, see {@link Backend#forwardAndSample}). Single-threaded: its owner calls it.
 * NOTE: the backend is borrowed: the replica that created it closes it.
 */
public final class ModelRunner {
    private final Backend backend;
    private final Sampler sampler;
    private final int[] eosTokenIds;
    private final Optional<GrammarCompiler> grammars;
    private final Map<String, RunnerSequence> sequences = new HashMap<>();

    /** One sequence as the worker sees it. NOTE: {@code numTokens >= numComputed}; tokens past it await compute. */
    private static final class RunnerSequence {
        int[] tokens;
        int numTokens;
        int numComputed;
        int[] blockTable;
        final int adapterSlot;
        final SequenceSamplingState sampling;

        RunnerSequence(NewSequence s, SequenceSamplingState sampling) {
            this.tokens = Arrays.copyOf(s.tokenIds(), Math.max(16, s.tokenIds().length * 2));
            this.numTokens = s.tokenIds().length;
            this.numComputed = s.numComputedTokens();
            this.blockTable = s.blockTable().clone();
            this.adapterSlot = s.adapterSlot();
            this.sampling = sampling;
        }

        void append(int token) {
            if (numTokens == tokens.length) {
                tokens = Arrays.copyOf(tokens, tokens.length * 2);
            }
            tokens[numTokens++] = token;
        }
    }

    public ModelRunner(Backend backend, Sampler sampler, int[] eosTokenIds) {
        this(backend, sampler, eosTokenIds, Optional.empty());
    }

    /** @param grammars compiles the structured-output constraints of requests (cached; usually already compiled) */
    public ModelRunner(Backend backend, Sampler sampler, int[] eosTokenIds, Optional<GrammarCompiler> grammars) {
        this.backend = backend;
        this.sampler = sampler;
        this.eosTokenIds = eosTokenIds.clone();
        this.grammars = grammars;
    }

    public Backend backend() {
        return backend;
    }

    public StepResult execute(StepPlan plan) {
        plan.dropped().forEach(sequences::remove);
        if (plan.copySrc().length > 0) {
            backend.copyBlocks(plan.copySrc(), plan.copyDst());
        }
        Map<String, Integer> scheduled = new LinkedHashMap<>();
        for (NewSequence s : plan.newSequences()) {
            int[] prompt = Arrays.copyOf(s.tokenIds(), s.promptLength());
            int[] outputs = Arrays.copyOfRange(s.tokenIds(), s.promptLength(), s.tokenIds().length);
            SequenceSamplingState sampling = SequenceSamplingState.resume(s.params(), prompt, eosTokenIds, s.seed(), outputs);
            if (s.params().grammar().isPresent()) {
                // NOTE: the outputs are replayed through a fresh matcher: resumed and recomputed sequences rebuild it.
                GrammarCompiler compiler = grammars.orElseThrow(() -> new IllegalStateException(
                        "sequence " + s.seqId() + " has a structured-output constraint but this worker has no grammar compiler"));
                sampling.withGrammar(compiler.compile(s.params().grammar().get()).matcher(), outputs);
            }
            sequences.put(s.seqId(), new RunnerSequence(s, sampling));
            scheduled.put(s.seqId(), s.numScheduledTokens());
        }
        for (ContinuingSequence c : plan.continuing()) {
            RunnerSequence seq = known(c.seqId());
            if (c.changedBlocks().length > 0 || c.firstChangedBlock() != seq.blockTable.length) {
                int[] table = Arrays.copyOf(seq.blockTable, c.firstChangedBlock() + c.changedBlocks().length);
                System.arraycopy(c.changedBlocks(), 0, table, c.firstChangedBlock(), c.changedBlocks().length);
                seq.blockTable = table;
            }
            scheduled.put(c.seqId(), c.numScheduledTokens());
        }
        if (scheduled.isEmpty()) {
            return new StepResult(plan.stepId(), new int[0], List.of());
        }
        List<String> ids = new ArrayList<>(scheduled.keySet());
        List<SequenceForward> batch = new ArrayList<>(ids.size());
        for (String id : ids) {
            RunnerSequence seq = sequences.get(id);
            int n = scheduled.get(id);
            if (seq.numComputed + n > seq.numTokens) {
                throw new IllegalStateException("plan schedules " + n + " tokens of " + id + " but only "
                        + (seq.numTokens - seq.numComputed) + " await compute");
            }
            boolean samples = seq.numComputed + n == seq.numTokens;
            batch.add(new SequenceForward(Arrays.copyOfRange(seq.tokens, seq.numComputed, seq.numComputed + n),
                    seq.numComputed, seq.blockTable, samples ? LogitsMode.LAST : LogitsMode.NONE, seq.adapterSlot));
        }
        List<SequenceSamplingState> states = new ArrayList<>(ids.size());
        for (int i = 0; i < ids.size(); i++) {
            states.add(batch.get(i).logits() == LogitsMode.LAST ? sequences.get(ids.get(i)).sampling : null);
        }
        List<SampledToken> tokens = backend.forwardAndSample(batch, states, sampler);
        int[] sampledAt = new int[ids.size()];
        List<SampledToken> sampled = new ArrayList<>(ids.size());
        for (int i = 0; i < ids.size(); i++) {
            RunnerSequence seq = sequences.get(ids.get(i));
            seq.numComputed += batch.get(i).numTokens();
            SampledToken token = tokens.get(i);
            if (token != null) {
                seq.append(token.tokenId());
                sampledAt[sampled.size()] = i;
                sampled.add(token);
            }
        }
        return new StepResult(plan.stepId(), Arrays.copyOf(sampledAt, sampled.size()), sampled);
    }

    private RunnerSequence known(String seqId) {
        RunnerSequence seq = sequences.get(seqId);
        if (seq == null) {
            throw new IllegalStateException("plan continues sequence " + seqId + ", which this worker does not hold");
        }
        return seq;
    }

    /** Drops every sequence: after a failed step the engine resubmits them in full. */
    public void reset() {
        sequences.clear();
    }

    /** Sequences this runner holds state for (should be zero once the engine drains). */
    public int numSequences() {
        return sequences.size();
    }
}
