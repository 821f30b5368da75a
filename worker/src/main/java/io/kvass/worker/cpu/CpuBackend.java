package io.kvass.worker.cpu;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPU backend: a Llama-family forward pass in fp32 over a batch of sequences at different positions,
 * K/V kept in pages addressed through each sequence's block table. All new tokens of the batch are
 * flattened into one {@code [numTokens, hidden]} activation so every weight is streamed once per step.
 */
public final class CpuBackend implements Backend {
    private final ModelConfig config;
    private final Arena arena = Arena.ofShared();
    private final CpuWeights weights;
    private final CpuKvCache cache;
    private final CpuThreads threads;
    private final float[][] ropeFreqs;

    public CpuBackend(LoadedModel model, int numKvBlocks, int blockSize, int threads) {
        this.config = model.config();
        this.weights = CpuWeights.of(model.tensors(), arena);
        this.cache = new CpuKvCache(config.numLayers(), numKvBlocks, blockSize, config.kvDim());
        this.threads = new CpuThreads(threads);
        this.ropeFreqs = new float[][] {config.rope().inverseFrequencies(config.headDim())};
    }

    /** How many blocks fit in {@code bytes} of K/V memory for this model. */
    public static int blocksFor(ModelConfig c, long bytes, int blockSize) {
        return (int) Math.max(0, bytes / CpuKvCache.bytesPerBlock(c.numLayers(), blockSize, c.kvDim()));
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public int numKvBlocks() {
        return cache.numBlocks;
    }

    @Override
    public int blockSize() {
        return cache.blockSize;
    }

    /** Bytes of weights one decode step streams from memory. */
    public long decodeBytes() {
        return weights.decodeBytes();
    }

    @Override
    public void copyBlocks(int[] src, int[] dst) {
        for (int i = 0; i < src.length; i++) {
            cache.copyBlock(src[i], dst[i]);
        }
    }

    @Override
    public List<float[][]> forward(List<SequenceForward> batch) {
        Step step = Step.of(batch, config, cache);
        int hidden = config.hiddenSize(), n = step.numTokens;
        float[] x = new float[n * hidden];           // [n, hidden] residual stream
        for (int t = 0; t < n; t++) {
            weights.embedding().row(step.tokens[t], x, t * hidden);
        }
        float[] xn = new float[n * hidden];          // [n, hidden]
        float[] q = new float[n * config.qDim()];    // [n, qDim]
        float[] k = new float[n * config.kvDim()];   // [n, kvDim]
        float[] v = new float[n * config.kvDim()];   // [n, kvDim]
        float[] attn = new float[n * config.qDim()]; // [n, qDim]
        float[] out = new float[n * hidden];         // [n, hidden]
        float[] gate = new float[n * config.intermediateSize()]; // [n, ffn]
        float[] up = new float[n * config.intermediateSize()];   // [n, ffn]
        Attention attention = new Attention(config, cache, threads);
        for (int layer = 0; layer < config.numLayers(); layer++) {
            CpuWeights.Layer w = weights.layers().get(layer);
            normRows(x, w.attnNorm(), xn, n);
            project(w.q(), xn, n, q, w.qBias());
            project(w.k(), xn, n, k, w.kBias());
            project(w.v(), xn, n, v, w.vBias());
            Rope.apply(q, config.numHeads(), k, config.numKvHeads(), config.headDim(), step.positions, ropeFreqs[0]);
            attention.write(layer, step, k, v);
            attention.compute(layer, step, q, attn);
            threads.multiply(w.o(), attn, n, out);
            VectorMath.add(x, out, n * hidden);

            normRows(x, w.ffnNorm(), xn, n);
            threads.multiply(w.gate(), xn, n, gate);
            threads.multiply(w.up(), xn, n, up);
            VectorMath.siluMul(gate, up, n * config.intermediateSize());
            threads.multiply(w.down(), gate, n, out);
            VectorMath.add(x, out, n * hidden);
        }
        return logits(batch, step, x);
    }

    private void normRows(float[] x, float[] weight, float[] out, int n) {
        int hidden = config.hiddenSize();
        for (int t = 0; t < n; t++) {
            VectorMath.rmsNorm(x, t * hidden, weight, config.rmsNormEps(), out, t * hidden, hidden);
        }
    }

    private void project(Matrix w, float[] x, int n, float[] out, float[] bias) {
        threads.multiply(w, x, n, out);
        if (bias != null) {
            for (int t = 0; t < n; t++) {
                VectorMath.axpy(1f, bias, 0, out, t * bias.length, bias.length);
            }
        }
    }

    /** Final norm and LM head only for the rows someone will sample from or inspect. */
    private List<float[][]> logits(List<SequenceForward> batch, Step step, float[] x) {
        int hidden = config.hiddenSize(), vocab = config.vocabSize();
        int[] rows = step.logitRows(batch);
        float[] xn = new float[rows.length * hidden];
        for (int i = 0; i < rows.length; i++) {
            VectorMath.rmsNorm(x, rows[i] * hidden, weights.finalNorm(), config.rmsNormEps(), xn, i * hidden, hidden);
        }
        float[] all = new float[rows.length * vocab]; // [rows, vocab]
        threads.multiply(weights.lmHead(), xn, rows.length, all);
        List<float[][]> result = new ArrayList<>(batch.size());
        int row = 0;
        for (SequenceForward s : batch) {
            int count = s.logits() == LogitsMode.NONE ? 0 : s.logits() == LogitsMode.LAST ? 1 : s.numTokens();
            float[][] seqLogits = new float[count][];
            for (int i = 0; i < count; i++, row++) {
                seqLogits[i] = java.util.Arrays.copyOfRange(all, row * vocab, (row + 1) * vocab);
            }
            result.add(seqLogits);
        }
        return result;
    }

    @Override
    public void close() {
        threads.close();
        arena.close();
    }
}
