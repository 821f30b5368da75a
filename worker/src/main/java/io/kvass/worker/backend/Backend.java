package io.kvass.worker.backend;

import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SequenceSamplingState;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs the model over a batch of sequences at different positions, each with its own block table
 * into the backend's paged K/V cache. Implementations: the CPU backend, the CUDA backend.
 */
public interface Backend extends AutoCloseable {

    ModelConfig config();

    /** Number of K/V blocks this backend holds, each {@link #blockSize()} positions of every layer. */
    int numKvBlocks();

    int blockSize();

    /**
     * One forward pass. The result has, per sequence in order, a {@code [rows][vocab]} array: no rows
     * for {@link LogitsMode#NONE}, one for {@link LogitsMode#LAST}, one per new token for {@link LogitsMode#ALL}.
     */
    List<float[][]> forward(List<SequenceForward> batch);

    /**
     * One forward pass and the next token of every sequence that asks for logits: the result has, per
     * sequence in order, its token ({@code null} for {@link LogitsMode#NONE}); each token is recorded
     * in the sequence's state. Sequences must ask for {@link LogitsMode#NONE} or {@link LogitsMode#LAST};
     * {@code states.get(i)} is read only for the latter ({@code null} allowed otherwise).
     *
     * <p>This default is {@link #forward} then {@code sampler} on the host. A backend may sample on its
     * device instead, for rows it can: then only token ids cross to the host and those rows follow
     * vLLM's default sampling (see {@code Sampler.cpu()}) whatever {@code sampler} is, with the
     * backend's own random stream for seeded rows (reproducible per seed, but not the CPU sampler's
     * tokens). {@code sampler} remains the rule for the rows the backend leaves to the host.
     */
    default List<SampledToken> forwardAndSample(List<SequenceForward> batch, List<SequenceSamplingState> states,
                                                Sampler sampler) {
        checkSampling(batch, states);
        List<float[][]> logits = forward(batch);
        List<SampledToken> tokens = new ArrayList<>(batch.size());
        for (int i = 0; i < batch.size(); i++) {
            float[][] rows = logits.get(i);
            tokens.add(rows.length == 0 ? null : sampler.sample(rows[rows.length - 1], states.get(i)));
        }
        return tokens;
    }

    /** {@link #forwardAndSample(List, List, Sampler)} with {@link Sampler#cpu()} for the host's rows. */
    default List<SampledToken> forwardAndSample(List<SequenceForward> batch, List<SequenceSamplingState> states) {
        return forwardAndSample(batch, states, Sampler.cpu());
    }

    /** The arguments' contract of {@link #forwardAndSample(List, List, Sampler)}. */
    static void checkSampling(List<SequenceForward> batch, List<SequenceSamplingState> states) {
        if (batch.size() != states.size()) {
            throw new IllegalArgumentException(batch.size() + " sequences but " + states.size() + " sampling states");
        }
        for (int i = 0; i < batch.size(); i++) {
            LogitsMode mode = batch.get(i).logits();
            if (mode == LogitsMode.ALL) {
                throw new IllegalArgumentException("forwardAndSample: sequence " + i + " asks for LogitsMode.ALL");
            }
            if (mode == LogitsMode.LAST && states.get(i) == null) {
                throw new NullPointerException("no sampling state for sequence " + i + ", which asks for logits");
            }
        }
    }

    /**
     * LoRA adapter slots this backend holds: slots {@code 1..maxLoras()}; a sequence's
     * {@link SequenceForward#adapterSlot()} names one, or 0 for the base model.
     */
    default int maxLoras() {
        return 0;
    }

    /** The largest adapter rank {@link #loadAdapter} accepts. */
    default int maxLoraRank() {
        return 0;
    }

    /**
     * Puts an adapter into a slot, replacing whatever was there; sequences naming the slot use it from
     * the next forward pass on.
     * NOTE: never concurrently with {@link #forward}: the owner calls it between steps.
     *
     * @throws IllegalArgumentException for a slot outside {@code 1..maxLoras()} or weights that do not
     *                                  fit this model or rank limit
     */
    default void loadAdapter(int slot, LoraWeights weights) {
        throw new IllegalArgumentException("this backend has no LoRA adapter slots (asked for slot " + slot + ")");
    }

    /** Empties a slot (frees its memory); a forward pass naming it afterwards fails. Same threading as {@link #loadAdapter}. */
    default void unloadAdapter(int slot) {
        throw new IllegalArgumentException("this backend has no LoRA adapter slots (asked for slot " + slot + ")");
    }

    /** Copies whole K/V blocks {@code src[i] -> dst[i]} (copy-on-write forks). */
    void copyBlocks(int[] src, int[] dst);

    @Override
    void close();
}
