package io.kvass.worker.cpu;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraTarget;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPU backend: a Llama-family forward pass in fp32 over a batch of sequences at different positions,
 * K/V kept in pages addressed through each sequence's block table. All new tokens of the batch are
 * flattened into one {@code [numTokens, hidden]} activation so every weight is streamed once per step.
 * Each sequence may name a LoRA adapter slot; its tokens then get their adapter's update on every
 * adapted projection ({@link CpuLora}), so one step mixes the base model and many adapters.
 */
public final class CpuBackend implements Backend {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(CpuBackend.class);
    private final ModelConfig config;
    private final Arena arena = Arena.ofShared();
    private final CpuWeights weights;
    private final CpuKvCache cache;
    private final CpuThreads threads;
    private final float[][] ropeFreqs;
    private final LoraCapacity loraCapacity;
    private final CpuLora lora;

    public CpuBackend(LoadedModel model, int numKvBlocks, int blockSize, int threads) {
        this(model, numKvBlocks, blockSize, threads, LoraCapacity.NONE);
    }

    /** With {@code lora.maxLoras()} adapter slots of rank up to {@code lora.maxRank()}. */
    public CpuBackend(LoadedModel model, int numKvBlocks, int blockSize, int threads, LoraCapacity lora) {
        this(model, numKvBlocks, blockSize, threads, lora, CpuWeightMemory.DEFAULT);
    }

    /** With the weight matrices kept in {@code memory}, in the default format. */
    public CpuBackend(LoadedModel model, int numKvBlocks, int blockSize, int threads, LoraCapacity lora,
                      CpuWeightMemory memory) {
        this(model, numKvBlocks, blockSize, threads, lora, memory, CpuWeightFormat.DEFAULT);
    }

    /** With the weight matrices kept in {@code memory}, bf16 ones stored in {@code format}. */
    public CpuBackend(LoadedModel model, int numKvBlocks, int blockSize, int threads, LoraCapacity lora,
                      CpuWeightMemory memory, CpuWeightFormat format) {
        this.config = model.config();
        this.loraCapacity = lora;
        this.lora = new CpuLora(config, lora);
        this.weights = CpuWeights.of(model.tensors(), memory, format, arena);
        LOG.info("{}", weights.formatSummary(format));
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

    /**
     * The memory a decode step streams, matrix by matrix, as the kernels read it (tiled, copied or mapped):
     * a benchmark's floor must read these same pages.
     */
    public List<MemorySegment> decodeSegments() {
        return weights.decodeMatrices().stream().map(Matrix::data).toList();
    }

    @Override
    public int maxLoras() {
        return loraCapacity.maxLoras();
    }

    @Override
    public int maxLoraRank() {
        return loraCapacity.maxRank();
    }

    /** The CPU's "device" memory is the host's: the slot references the decoded weights, no copy. */
    @Override
    public void loadAdapter(int slot, LoraWeights weights) {
        lora.load(slot, weights);
    }

    @Override
    public void unloadAdapter(int slot) {
        lora.unload(slot);
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
        CpuLora.Groups adapters = lora.group(batch, step);
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
        Rope rope = new Rope(config.headDim(), step.positions, ropeFreqs[0]);
        boolean byKvHeads = adapters.isEmpty() && config.numKvHeads() % threads.threads() == 0;
        for (int layer = 0; layer < config.numLayers(); layer++) {
            CpuWeights.Layer w = weights.layers().get(layer);
            Projector p = new Projector(layer, n, adapters);
            normRows(x, w.attnNorm(), xn, n);
            if (byKvHeads) {
                attentionByKvHeads(layer, w, step, rope, attention, xn, q, k, v, attn);
            } else {
                threads.multiplyAll(new Matrix[] {w.q(), w.k(), w.v()}, xn, n, new float[][] {q, k, v});
                p.finish(LoraTarget.Q_PROJ, xn, q, w.qBias());
                p.finish(LoraTarget.K_PROJ, xn, k, w.kBias());
                p.finish(LoraTarget.V_PROJ, xn, v, w.vBias());
                rope.apply(q, config.numHeads(), 0, config.numHeads());
                rope.apply(k, config.numKvHeads(), 0, config.numKvHeads());
                attention.write(layer, step, k, v);
                attention.compute(layer, step, q, attn);
            }
            p.project(LoraTarget.O_PROJ, w.o(), attn, out, null);
            VectorMath.add(x, out, n * hidden);

            normRows(x, w.ffnNorm(), xn, n);
            if (adapters.isEmpty()) {
                gatedFfn(w, xn, n, gate, up);
            } else {
                threads.multiplyAll(new Matrix[] {w.gate(), w.up()}, xn, n, new float[][] {gate, up});
                p.finish(LoraTarget.GATE_PROJ, xn, gate, null);
                p.finish(LoraTarget.UP_PROJ, xn, up, null);
                VectorMath.siluMul(gate, up, 0, n * config.intermediateSize());
            }
            p.project(LoraTarget.DOWN_PROJ, w.down(), gate, out, null);
            VectorMath.add(x, out, n * hidden);
        }
        return logits(batch, step, x);
    }

    /** One layer's projections of {@code n} token rows: {@code out = x W^T (+ bias) (+ each token's LoRA update)}. */
    private final class Projector {
        private final int layer;
        private final int n;
        private final CpuLora.Groups adapters;

        Projector(int layer, int n, CpuLora.Groups adapters) {
            this.layer = layer;
            this.n = n;
            this.adapters = adapters;
        }

        void project(LoraTarget target, Matrix w, float[] x, float[] out, float[] bias) {
            threads.multiply(w, x, n, out);
            finish(target, x, out, bias);
        }

        /** What follows a projection's matmul: its bias, then each row's LoRA update. */
        void finish(LoraTarget target, float[] x, float[] out, float[] bias) {
            if (bias != null) {
                for (int t = 0; t < n; t++) {
                    VectorMath.axpy(1f, bias, 0, out, t * bias.length, bias.length);
                }
            }
            lora.apply(adapters, layer, target, x, out, threads);
        }
    }

    /**
     * q/k/v projections, biases, RoPE, the K/V write and attention in one hand-off: each thread owns whole
     * K/V heads and the query heads that read them, so nothing it computes is needed by another thread
     * before o_proj. NOTE: this saves one hand-off per layer, and attention no longer waits for the slower
     * thread's projections (a barrier costs most when another process holds one of the cores). Rows per
     * thread are as balanced as the stacked split's when the threads divide the K/V heads; LoRA updates
     * land between the projections and RoPE, so only without adapters.
     */
    private void attentionByKvHeads(int layer, CpuWeights.Layer w, Step step, Rope rope, Attention attention,
                                    float[] xn, float[] q, float[] k, float[] v, float[] attn) {
        int hd = config.headDim(), group = config.numHeads() / config.numKvHeads(), n = step.numTokens;
        threads.forRange(config.numKvHeads(), (kv0, kv1) -> {
            int h0 = kv0 * group, h1 = kv1 * group;
            w.q().multiply(xn, n, q, h0 * hd, h1 * hd);
            w.k().multiply(xn, n, k, kv0 * hd, kv1 * hd);
            w.v().multiply(xn, n, v, kv0 * hd, kv1 * hd);
            addBias(w.qBias(), q, n, h0 * hd, h1 * hd);
            addBias(w.kBias(), k, n, kv0 * hd, kv1 * hd);
            addBias(w.vBias(), v, n, kv0 * hd, kv1 * hd);
            rope.apply(q, config.numHeads(), h0, h1);
            rope.apply(k, config.numKvHeads(), kv0, kv1);
            attention.kvHeads(layer, step, q, k, v, attn, kv0, kv1);
            return 0;
        });
    }

    /** {@code out[t, r] += bias[r]} for rows {@code [r0, r1)} of every token; nothing without a bias. */
    private static void addBias(float[] bias, float[] out, int n, int r0, int r1) {
        if (bias != null) {
            for (int t = 0; t < n; t++) {
                VectorMath.axpy(1f, bias, r0, out, t * bias.length + r0, r1 - r0);
            }
        }
    }

    /**
     * {@code gate = silu(xn gate^T) * (xn up^T)} in one hand-off: each thread multiplies the same rows
     * of gate and up, then gates them, so SiLU's exps are split across the threads instead of running
     * on one while the other waits. Only without LoRA, whose updates land between the matmul and SiLU.
     */
    private void gatedFfn(CpuWeights.Layer w, float[] xn, int n, float[] gate, float[] up) {
        int ffn = config.intermediateSize();
        threads.forRange(ffn, (r0, r1) -> {
            w.gate().multiply(xn, n, gate, r0, r1);
            w.up().multiply(xn, n, up, r0, r1);
            for (int t = 0; t < n; t++) {
                VectorMath.siluMul(gate, up, t * ffn + r0, r1 - r0);
            }
            return 0;
        });
    }

    private void normRows(float[] x, float[] weight, float[] out, int n) {
        int hidden = config.hiddenSize();
        for (int t = 0; t < n; t++) {
            VectorMath.rmsNorm(x, t * hidden, weight, config.rmsNormEps(), out, t * hidden, hidden);
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
                // NOTE: a single row (batch-1 decode) is handed over as is: copying 0.5 MB cost ~1% of a step.
                seqLogits[i] = rows.length == 1 ? all : java.util.Arrays.copyOfRange(all, row * vocab, (row + 1) * vocab);
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
