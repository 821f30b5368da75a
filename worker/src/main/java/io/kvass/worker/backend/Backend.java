package io.kvass.worker.backend;

import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.ModelConfig;
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
