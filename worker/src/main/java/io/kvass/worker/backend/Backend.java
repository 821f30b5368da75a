package io.kvass.worker.backend;

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

    /** Copies whole K/V blocks {@code src[i] -> dst[i]} (copy-on-write forks). */
    void copyBlocks(int[] src, int[] dst);

    @Override
    void close();
}
