package io.kvass.worker.cuda;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import io.kvass.worker.sampling.TokenLogprob;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA backend: the same Llama-family forward pass as the CPU backend on one GPU, with bf16
 * weights and activations and fp32 accumulation (the residual stream stays fp32). All new tokens
 * of a batch are flattened into one {@code [numTokens, hidden]} activation, so every weight is read
 * once per step; attention reads each sequence's paged K/V through its block table. GEMMs go to
 * cuBLAS (or, for a handful of tokens, our skinny GEMM kernel); everything else is kvass's own
 * kernels ({@code src/main/cuda}). Decode steps replay as CUDA graphs. With LoRA slots, each
 * sequence may name an adapter: {@link CudaLora} adds every token's own update to each projection.
 */
public final class CudaBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);
    /** Logit rows computed (and copied to the host) at a time. */
    private static final int LOGIT_CHUNK = 256;
    /** Decode batches up to this size run as graphs, padded to the next power of two. */
    private static final int MAX_GRAPH_BATCH = 256;

    private final ModelConfig config;
    private final CudaOptions options;
    private final CudaDevice device;
    private final CudaKernels kernels;
    private final CudaWeights weights;
    private final CuBlas blas;
    /** Decode-bucket products on the fastest of cublasGemmEx and cuBLASLt's algorithms ({@code -Dkvass.cuda.gemmTune}). */
    private final GemmTuner gemms;
    private final Scratch scratch;
    private final StepInputs inputs;
    private final DeviceBuffer inputsDevice;
    private final ByteBuffer inputsHost;
    private final ByteBuffer logitsHost;
    private final ByteBuffer copyHost;
    private final ByteBuffer sampleHost;     // [logitRows] sample.cu's SampleRow
    private final DeviceBuffer sampleDevice;
    private final ByteBuffer idsHost;
    /** Logprob requests of a step's device-sampled rows ([descriptor, n] ints) and their results. */
    private final ByteBuffer logprobRequestsHost;
    private final DeviceBuffer logprobRequestsDevice;
    private final ByteBuffer logprobsHost;
    private final DeviceBuffer logprobsDevice;
    /** Structured outputs: the grammar bitmasks of a step's constrained rows ({@code [rows][maskWords]} ints) and their rows. */
    private final int maskWords;
    private final ByteBuffer masksHost;
    private final DeviceBuffer masksDevice;
    private final ByteBuffer maskRowsHost;
    private final DeviceBuffer maskRowsDevice;
    /** {@code -Dkvass.cuda.sampling=cpu} sends every row's logits to the host sampler (debugging, comparisons). */
    private final boolean deviceSampling = !"cpu".equalsIgnoreCase(System.getProperty("kvass.cuda.sampling", "gpu"));
    private final DeviceBuffer copyDevice;
    private final CudaKvCache cache;
    private final CudaLora lora;            // null without LoRA slots
    private final CudaGraphs graphs;
    private final float attentionScale;
    private final boolean prefillKernel;
    private int skinnyMaxTokens = 1;
    private java.util.Set<String> skippedPhases = java.util.Set.of();
    /**
     * Decode fusions (bit-identical results): SiLU into the gate/up GEMV at batch 1, RoPE and the K/V
     * store into the tensor-core attention kernel in every decode step ({@code -Dkvass.cuda.fuse=all|none}).
     * The RMS norms stay their own kernels: fused into the GEMV before them (every block normalizing) or
     * after them (the last block normalizing) both measured slower (docs/benchmarks.md).
     */
    private boolean fuse = !System.getProperty("kvass.cuda.fuse", "all").equals("none");
    /**
     * With {@code -Dkvass.cuda.gemm=kvass}, steps of 9..256 tokens multiply on kvass's stream-K wgmma GEMM
     * (gemm.cu; Hopper, shapes it tiles), with SiLU in the gate/up epilogue. Off by default: it is still
     * slower than cuBLAS on every Llama-3-8B shape (docs/benchmarks.md, 2026-11-23 session 4).
     */
    private boolean decodeGemm = System.getProperty("kvass.cuda.gemm", "cublas").equals("kvass");
    private CudaKernels.AttentionVariant attentionVariant = CudaKernels.AttentionVariant.valueOf(
            System.getProperty("kvass.cuda.attention", "mma").toUpperCase(java.util.Locale.ROOT));
    private CudaProfile profile;
    private boolean closed;

    /** Uploads a loaded model to the GPU ({@code --device cuda}). */
    public static CudaBackend open(LoadedModel model, CudaOptions options) {
        checkSupported(model.config());
        CudaDevice device = new CudaDevice(options.device());
        try {
            CudaKernels kernels = new CudaKernels(device);
            CudaWeights weights = CudaWeights.upload(device, model.config(), model.tensors());
            return new CudaBackend(device, kernels, model.config(), weights, options);
        } catch (RuntimeException | Error e) {
            device.close();
            throw e;
        }
    }

    /** A model of {@code config}'s shapes with random weights made on the GPU (benchmarks). */
    public static CudaBackend random(ModelConfig config, CudaOptions options, long seed) {
        checkSupported(config);
        CudaDevice device = new CudaDevice(options.device());
        try {
            CudaKernels kernels = new CudaKernels(device);
            CudaWeights weights = CudaWeights.random(device, kernels, config, seed);
            return new CudaBackend(device, kernels, config, weights, options);
        } catch (RuntimeException | Error e) {
            device.close();
            throw e;
        }
    }

    /** Empty when this machine can run the CUDA backend, otherwise why not. */
    public static java.util.Optional<String> unavailableReason() {
        if (!CudaKernels.hasKernels()) {
            return java.util.Optional.of("this build has no CUDA kernels (nvcc was absent at build time)");
        }
        return CudaDevice.availability();
    }

    private static void checkSupported(ModelConfig c) {
        if (!CudaKernels.supportsHeadDim(c.headDim())) {
            throw new ModelLoadException("--device cuda: head_dim " + c.headDim() + " is not supported (supported: "
                    + java.util.Arrays.toString(CudaKernels.HEAD_DIMS) + ")");
        }
        if (c.numHeads() / c.numKvHeads() > CudaKernels.MAX_GROUP) {
            throw new ModelLoadException("--device cuda: " + c.numHeads() / c.numKvHeads() + " query heads per K/V head; "
                    + "at most " + CudaKernels.MAX_GROUP + " are supported");
        }
    }

    private CudaBackend(CudaDevice device, CudaKernels kernels, ModelConfig config, CudaWeights weights, CudaOptions options) {
        this.config = config;
        this.options = options;
        this.device = device;
        this.kernels = kernels;
        this.weights = weights;
        this.blas = new CuBlas(device, device.allocate(CuBlas.WORKSPACE_BYTES, "cuBLAS workspace"));
        this.gemms = tuner(device, kernels, blas, config, weights);
        int tokens = options.maxTokensPerStep();
        int logitRows = Math.max(LOGIT_CHUNK, Math.min(MAX_GRAPH_BATCH, tokens));
        long partialRows = AttentionPlan.maxPartialRows(CudaKernels.MAX_GROUP, config.numKvHeads(), device.multiprocessors);
        this.scratch = new Scratch(device, config, tokens, logitRows, partialRows);
        int maxBlocks = (options.maxModelLen() + options.blockSize() - 1) / options.blockSize();
        long inputBytes = StepInputs.bytes(tokens, maxBlocks);
        this.inputsHost = device.allocateHost(inputBytes);
        this.inputsDevice = device.allocate(inputBytes, "step inputs");
        this.inputs = new StepInputs(tokens, maxBlocks, inputsHost);
        this.logitsHost = device.allocateHost(4L * logitRows * config.vocabSize());
        this.copyHost = device.allocateHost(8L * 4096);
        this.sampleHost = device.allocateHost((long) CudaKernels.SAMPLE_ROW_BYTES * logitRows);
        this.sampleDevice = device.allocate((long) CudaKernels.SAMPLE_ROW_BYTES * logitRows, "sampling parameters");
        this.idsHost = device.allocateHost(4L * logitRows);
        this.logprobRequestsHost = device.allocateHost(8L * logitRows);
        this.logprobRequestsDevice = device.allocate(8L * logitRows, "logprob requests");
        this.logprobsHost = device.allocateHost(4L * CudaKernels.LOGPROB_WORDS * logitRows);
        this.logprobsDevice = device.allocate(4L * CudaKernels.LOGPROB_WORDS * logitRows, "logprobs");
        this.maskWords = 2 * ((config.vocabSize() + 63) / 64);
        this.masksHost = device.allocateHost(4L * maskWords * logitRows);
        this.masksDevice = device.allocate(4L * maskWords * logitRows, "grammar masks");
        this.maskRowsHost = device.allocateHost(4L * logitRows);
        this.maskRowsDevice = device.allocate(4L * logitRows, "grammar mask rows");
        this.copyDevice = device.allocate(8L * 4096, "block copies");
        this.lora = options.lora().enabled() ? new CudaLora(device, kernels, blas, config, options.lora(), tokens) : null;
        this.cache = new CudaKvCache(device, config, kvBlocks(), options.blockSize());
        device.zero(inputsDevice);
        device.synchronize();
        this.graphs = new CudaGraphs(device);
        this.attentionScale = (float) (1.0 / Math.sqrt(config.headDim()));
        this.prefillKernel = CudaKernels.hasPrefillKernel(config.headDim())
                && !Boolean.getBoolean("kvass.cuda.noPrefillKernel");
        LOG.info("CUDA backend on {} ({} SMs): weights {} GiB, {} KV blocks of {} tokens ({} GiB), {} tokens per step",
                device.name, device.multiprocessors, String.format("%.2f", CudaDevice.gib(weights.bytes())),
                cache.numBlocks, cache.blockSize,
                String.format("%.2f", CudaDevice.gib(cache.numBlocks * CudaKvCache.bytesPerBlock(config, cache.blockSize))),
                tokens);
    }

    private static GemmTuner tuner(CudaDevice device, CudaKernels kernels, CuBlas blas, ModelConfig c, CudaWeights w) {
        GemmTuner tuner = new GemmTuner(device, kernels, blas, GemmTuner.Mode.fromProperty());
        int h = c.hiddenSize(), ffn = c.intermediateSize();
        for (CudaWeights.Layer l : w.layers()) {
            tuner.addWeight(c.qDim() + 2 * c.kvDim(), h, l.qkv());
            tuner.addWeight(h, c.qDim(), l.o());
            tuner.addWeight(2 * ffn, h, l.gateUp());
            tuner.addWeight(h, ffn, l.down());
        }
        tuner.addWeight(c.vocabSize(), h, w.lmHead());
        return tuner;
    }

    /**
     * The fixed pool size, or what the memory budget holds, capped at what max_num_seqs sequences can
     * use. The budget is vLLM's: {@code --gpu-memory-utilization} of the GPU's whole memory for this
     * process, minus what is in use once weights and activation buffers are allocated (so the rest,
     * 10% by default, stays for cuBLAS, CUDA graphs and other processes).
     */
    private int kvBlocks() {
        long perBlock = CudaKvCache.bytesPerBlock(config, options.blockSize());
        if (options.numKvBlocks() > 0) {
            return options.numKvBlocks();
        }
        long[] info = device.memoryInfo();
        long used = info[1] - info[0];
        long budget = Math.max(0, (long) (options.gpuMemoryUtilization() * info[1]) - used);
        long useful = (long) options.maxNumSeqs() * ((options.maxModelLen() + options.blockSize() - 1) / options.blockSize());
        long blocks = Math.min(Math.min(budget / perBlock, useful), Integer.MAX_VALUE);
        if (blocks < 1) {
            throw new ModelLoadException(String.format("no GPU memory left for the K/V cache: --gpu-memory-utilization "
                    + "%.2f of %.2f GiB is %.2f GiB, and %.2f GiB are in use after the weights; one block of %d tokens "
                    + "needs %.1f MiB", options.gpuMemoryUtilization(), CudaDevice.gib(info[1]),
                    CudaDevice.gib((long) (options.gpuMemoryUtilization() * info[1])), CudaDevice.gib(used),
                    options.blockSize(), perBlock / 1048576.0));
        }
        return (int) blocks;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public int maxLoras() {
        return lora == null ? 0 : lora.maxLoras();
    }

    @Override
    public int maxLoraRank() {
        return lora == null ? 0 : lora.maxRank();
    }

    @Override
    public synchronized void loadAdapter(int slot, LoraWeights adapter) {
        checkOpen();
        if (lora == null) {
            Backend.super.loadAdapter(slot, adapter); // refuses: no slots
            return;
        }
        device.makeCurrent();
        lora.load(slot, adapter);
    }

    @Override
    public synchronized void unloadAdapter(int slot) {
        checkOpen();
        if (lora == null) {
            Backend.super.unloadAdapter(slot); // refuses: no slots
            return;
        }
        device.makeCurrent();
        lora.unload(slot);
    }

    @Override
    public int numKvBlocks() {
        return cache.numBlocks;
    }

    @Override
    public int blockSize() {
        return cache.blockSize;
    }

    /** GPU model for logs and benchmark reports. */
    public String deviceName() {
        return device.name;
    }

    int multiprocessors() {
        return device.multiprocessors;
    }

    /** Sets the largest token count that uses the skinny GEMM kernel instead of cuBLAS (0 = never). */
    synchronized void setSkinnyMaxTokens(int tokens) {
        this.skinnyMaxTokens = Math.min(tokens, CudaKernels.SKINNY_MAX_TOKENS);
        graphs.clear();
    }

    /** Benchmarks: see {@link CudaKernels#tune}. */
    synchronized void tune(double skinnyWaves, int ropeSplitTokens) {
        kernels.tune(skinnyWaves, ropeSplitTokens);
        graphs.clear();
    }

    /**
     * Benchmarks only (ablation): the named phases are left out of every step from now on, so a graph's
     * time with and without them shows what they cost in place. The results are wrong while any is set.
     */
    synchronized void skipPhases(java.util.Set<String> names) {
        this.skippedPhases = java.util.Set.copyOf(names);
        graphs.clear();
    }

    /** Turns the decode fusions on or off (benchmarks, tests). */
    synchronized void setFusion(boolean on) {
        this.fuse = on;
        graphs.clear();
    }

    /** kvass's decode GEMM (true) or cuBLAS (false) for steps past the skinny path (benchmarks, tests). */
    synchronized void setDecodeGemm(boolean on) {
        this.decodeGemm = on;
        graphs.clear();
    }

    /** How the tensor-core decode kernel loads K/V (benchmarks and tests compare them). */
    synchronized void setAttentionLoads(CudaKernels.AttentionLoads loads) {
        kernels.setAttentionLoads(loads);
        graphs.clear();
    }

    /** GEMM autotuning on, off, or forced onto cuBLASLt (benchmarks, tests); shapes are tuned again. */
    synchronized void setGemmTuning(GemmTuner.Mode mode) {
        gemms.setMode(mode);
        graphs.clear();
    }

    /** The shapes tuned so far and what won (benchmarks). */
    synchronized List<GemmTuner.Result> gemmTuning() {
        return gemms.results();
    }

    /** Picks the paged attention kernel (benchmarks compare them). */
    synchronized void setAttentionVariant(CudaKernels.AttentionVariant variant) {
        this.attentionVariant = variant;
        graphs.clear();
    }

    @Override
    public synchronized List<float[][]> forward(List<SequenceForward> batch) {
        checkOpen();
        if (totalTokens(batch) > inputs.capacity) {
            return BatchSplitter.forward(batch, inputs.capacity, this::forward);
        }
        boolean logitsReady = runLayers(batch);
        return readLogits(batch, logitsReady);
    }

    /**
     * A forward pass that returns, per sequence, the argmax of its last row's logits, computed on the
     * GPU (only the ids cross to the host). Every sequence must ask for {@link LogitsMode#LAST}.
     */
    public synchronized int[] forwardGreedy(List<SequenceForward> batch) {
        checkOpen();
        for (SequenceForward s : batch) {
            if (s.logits() != LogitsMode.LAST) {
                throw new IllegalArgumentException("forwardGreedy needs LogitsMode.LAST for every sequence");
            }
        }
        if (totalTokens(batch) > inputs.capacity) {
            throw new IllegalArgumentException("forwardGreedy takes at most " + inputs.capacity + " tokens");
        }
        boolean logitsReady = runLayers(batch);
        int rows = inputs.numLogitRows;
        IntBuffer ids = logitsHost.asIntBuffer();
        int[] out = new int[rows];
        for (int r0 = 0; r0 < rows; r0 += scratch.logitRows) {
            int count = Math.min(scratch.logitRows, rows - r0);
            if (!logitsReady) {
                computeLogits(rowsAddress(r0), count);
            }
            long src = logitsReady ? scratch.logits.address(4L * r0 * config.vocabSize()) : scratch.logits.address();
            kernels.argmaxRows(count, src, scratch.ids.address(), config.vocabSize(), scratch.argmax);
            device.download(logitsHost, scratch.ids, 0, 4L * count);
            device.synchronize();
            ids.get(0, out, r0, count);
        }
        return out;
    }

    /**
     * The forward pass, then sampling on the GPU for every row that {@link #samplesOnDevice} allows
     * (sample.cu: greedy, temperature, min_p, top_k, top_p, seeded through Philox keyed by the
     * sequence's seed and output position, and logprob_rows for rows that ask for logprobs): only token
     * ids and the requested logprobs come back. Rows needing penalties or min_tokens masking copy just
     * their logits row to the host for {@code sampler}.
     */
    @Override
    public synchronized List<SampledToken> forwardAndSample(List<SequenceForward> batch,
                                                            List<SequenceSamplingState> states, Sampler sampler) {
        checkOpen();
        Backend.checkSampling(batch, states);
        if (totalTokens(batch) > inputs.capacity) {
            SampledToken[] out = new SampledToken[batch.size()];
            for (List<BatchSplitter.Piece> part : BatchSplitter.split(batch, inputs.capacity)) {
                List<SequenceForward> forwards = new ArrayList<>(part.size());
                List<SequenceSamplingState> partStates = new ArrayList<>(part.size());
                for (BatchSplitter.Piece piece : part) {
                    forwards.add(piece.forward());
                    partStates.add(piece.forward().logits() == LogitsMode.LAST ? states.get(piece.index()) : null);
                }
                List<SampledToken> got = forwardAndSample(forwards, partStates, sampler);
                for (int i = 0; i < part.size(); i++) {
                    if (got.get(i) != null) {
                        out[part.get(i).index()] = got.get(i);
                    }
                }
            }
            return java.util.Arrays.asList(out);
        }
        boolean logitsReady = runLayers(batch);
        int rows = inputs.numLogitRows, vocab = config.vocabSize();
        int[] sequenceOfRow = new int[rows];
        for (int i = 0, r = 0; i < batch.size(); i++) {
            if (batch.get(i).logits() == LogitsMode.LAST) {
                sequenceOfRow[r++] = i;
            }
        }
        SampledToken[] out = new SampledToken[batch.size()];
        int[] deviceRows = new int[scratch.logitRows], hostRows = new int[scratch.logitRows];
        for (int r0 = 0; r0 < rows; r0 += scratch.logitRows) {
            int count = Math.min(scratch.logitRows, rows - r0);
            if (!logitsReady) {
                computeLogits(rowsAddress(r0), count);
            }
            int firstRow = logitsReady ? r0 : 0;  // row r0's index in scratch.logits
            int onDevice = 0, onHost = 0, withLogprobs = 0, masked = 0;
            for (int i = 0; i < count; i++) {
                SequenceSamplingState state = states.get(sequenceOfRow[r0 + i]);
                if (deviceSampling && samplesOnDevice(state)) {
                    putSampleRow(onDevice, state, firstRow + i);
                    if (state.grammar().isPresent()) {
                        masksHost.asLongBuffer().put(masked * (maskWords / 2), state.grammar().get().mask());
                        maskRowsHost.putInt(4 * masked++, firstRow + i);
                    }
                    if (state.params().logprobs().isPresent()) {
                        logprobRequestsHost.putInt(8 * withLogprobs, onDevice);
                        logprobRequestsHost.putInt(8 * withLogprobs + 4, state.params().logprobs().getAsInt());
                        withLogprobs++;
                    }
                    deviceRows[onDevice++] = i;
                } else {
                    hostRows[onHost++] = i;
                }
            }
            if (masked > 0) {
                device.upload(maskRowsDevice, 0, maskRowsHost.slice(0, 4 * masked), 4L * masked);
                long maskBytes = 4L * maskWords * masked;
                device.upload(masksDevice, 0, masksHost.slice(0, (int) maskBytes), maskBytes);
                kernels.applyTokenBitmask(masked, scratch.logits.address(), maskRowsDevice.address(), masksDevice.address(),
                        maskWords, vocab);
            }
            if (onDevice > 0) {
                long bytes = (long) CudaKernels.SAMPLE_ROW_BYTES * onDevice;
                device.upload(sampleDevice, 0, sampleHost.slice(0, (int) bytes), bytes);
                kernels.sampleRows(onDevice, scratch.logits.address(), sampleDevice.address(), scratch.ids.address(), vocab);
                device.download(idsHost, scratch.ids, 0, 4L * onDevice);
            }
            if (withLogprobs > 0) {
                device.upload(logprobRequestsDevice, 0, logprobRequestsHost.slice(0, 8 * withLogprobs), 8L * withLogprobs);
                kernels.logprobRows(withLogprobs, scratch.logits.address(), sampleDevice.address(), scratch.ids.address(),
                        logprobRequestsDevice.address(), vocab, logprobsDevice.address());
                long bytes = 4L * CudaKernels.LOGPROB_WORDS * withLogprobs;
                device.download(logprobsHost, logprobsDevice, 0, bytes);
            }
            for (int j = 0; j < onHost; j++) {
                device.download(logitsHost.slice(4 * j * vocab, 4 * vocab), scratch.logits,
                        4L * (firstRow + hostRows[j]) * vocab, 4L * vocab);
            }
            device.synchronize();
            IntBuffer ids = idsHost.asIntBuffer();
            for (int j = 0, lp = 0; j < onDevice; j++) {
                int id = ids.get(j);
                if (id < 0 || id >= vocab) {
                    throw new IllegalStateException("every logit is -inf or NaN; nothing can be sampled (GPU sampler gave "
                            + id + ")");
                }
                int seq = sequenceOfRow[r0 + deviceRows[j]];
                states.get(seq).recordSampled(id);
                out[seq] = states.get(seq).params().logprobs().isPresent() ? logprobs(id, lp++)
                        : new SampledToken(id, Float.NaN, List.of());
            }
            FloatBuffer host = logitsHost.asFloatBuffer();
            for (int j = 0; j < onHost; j++) {
                float[] row = new float[vocab];
                host.get(j * vocab, row);
                int seq = sequenceOfRow[r0 + hostRows[j]];
                out[seq] = sampler.sample(row, states.get(seq));
            }
        }
        if (rows == 0) {
            device.synchronize();  // NOTE: the step's errors surface here rather than in the next one
        }
        return java.util.Arrays.asList(out);
    }

    /** Token {@code id} with logprob_rows' result {@code j} of this step. */
    private SampledToken logprobs(int id, int j) {
        int base = j * CudaKernels.LOGPROB_WORDS * 4;
        int listed = logprobsHost.getInt(base + 4);
        List<TokenLogprob> top = new ArrayList<>(listed);
        for (int k = 0; k < listed; k++) {
            top.add(new TokenLogprob(logprobsHost.getInt(base + 8 + 8 * k), logprobsHost.getFloat(base + 12 + 8 * k)));
        }
        return new SampledToken(id, logprobsHost.getFloat(base), top);
    }

    /**
     * Whether the GPU sampler can draw this row: no penalties and no min_tokens masking left (both edit
     * the row from host-side state). Logprobs are computed on the GPU too. A structured-output row's grammar
     * mask is applied on the device (apply_token_bitmask), unless it asks for logprobs: those are defined on
     * the raw logits, which the in-place mask would change, so such a row goes to the host.
     */
    static boolean samplesOnDevice(SequenceSamplingState state) {
        SamplingParams p = state.params();
        return (state.grammar().isEmpty() || p.logprobs().isEmpty())
                && p.repetitionPenalty() == 1f && p.frequencyPenalty() == 0f
                && p.presencePenalty() == 0f
                && (state.outputLength() >= p.minTokens() || state.minTokensStopIds().size() == 0);
    }

    /** Writes descriptor {@code index} (sample.cu's SampleRow) for {@code state}'s next token from logits row {@code row}. */
    private void putSampleRow(int index, SequenceSamplingState state, int row) {
        putSampleRow(sampleHost, index, state.params(), state.seed(), state.outputLength(), row);
    }

    static void putSampleRow(ByteBuffer host, int index, SamplingParams p, long seed, int position, int row) {
        int o = index * CudaKernels.SAMPLE_ROW_BYTES;
        host.putFloat(o, p.isGreedy() ? 0f : p.temperature());
        host.putFloat(o + 4, p.topP());
        host.putFloat(o + 8, p.minP());
        host.putInt(o + 12, p.topK());
        host.putLong(o + 16, seed);
        host.putInt(o + 24, position);
        host.putInt(o + 28, row);
    }

    private static int totalTokens(List<SequenceForward> batch) {
        int total = 0;
        for (SequenceForward s : batch) {
            total += s.numTokens();
        }
        return total;
    }

    /** Uploads the batch and runs every layer; true when the logits of all rows are already computed (graph). */
    private boolean runLayers(List<SequenceForward> batch) {
        device.makeCurrent();
        checkAdapters(batch);
        inputs.fill(batch, config, cache.blockSize, cache.numBlocks, options.maxModelLen(), prefillKernel);
        boolean adapted = inputs.numAdaptedTokens > 0;
        if (options.cudaGraphs() && profile == null && StepInputs.isDecode(batch) && batch.size() <= Math.min(MAX_GRAPH_BATCH, inputs.capacity)) {
            int bucket = Math.max(batch.size(), Math.min(bucketFor(batch.size()), inputs.capacity));
            inputs.padTo(bucket);
            upload();
            AttentionPlan plan = plan(bucket);
            int padded = bucket;
            graphs.run(new CudaGraphs.Key(bucket, plan.contextBucket(), adapted), () -> {
                layers(padded, plan, adapted);
                computeLogits(0, padded);
            });
            return true;
        }
        upload();
        layers(inputs.numTokens, plan(inputs.numTiles > 0 ? inputs.numPagedTokens : inputs.numTokens), adapted);
        return false;
    }

    private void checkAdapters(List<SequenceForward> batch) {
        if (lora != null) {
            lora.checkSlots(batch);
            return;
        }
        for (int s = 0; s < batch.size(); s++) {
            if (batch.get(s).adapterSlot() != 0) {
                throw new IllegalArgumentException("sequence " + s + " uses LoRA slot " + batch.get(s).adapterSlot()
                        + ", but this backend has no LoRA adapter slots");
            }
        }
    }

    /** The next power of two: decode graphs exist for these batch sizes only. */
    static int bucketFor(int batch) {
        return batch <= 1 ? 1 : Integer.highestOneBit(batch - 1) << 1;
    }

    private AttentionPlan plan(int tokens) {
        return AttentionPlan.of(Math.max(1, tokens), inputs.maxContext, config.numKvHeads(), device.multiprocessors);
    }

    private void upload() {
        device.upload(inputsDevice, 0, inputsHost.slice(0, (int) inputs.uploadBytes()), inputs.uploadBytes());
    }

    private long section(int section) {
        return inputsDevice.address(inputs.sectionOffset(section));
    }

    private long rowsAddress(int firstRow) {
        return section(StepInputs.LOGIT_ROWS) + 4L * firstRow;
    }

    /**
     * The decoder layers over {@code n} flattened tokens; leaves the residual stream in {@code scratch.x}.
     * {@code adapted}: some tokens have a LoRA adapter, whose updates need the projections' inputs and
     * outputs apart, so the batch-1 fusions are off.
     */
    private void layers(int n, AttentionPlan plan, boolean adapted) {
        int h = config.hiddenSize(), ffn = config.intermediateSize();
        int qkvDim = config.qDim() + 2 * config.kvDim();
        float eps = config.rmsNormEps();
        Scratch s = scratch;
        boolean siluIntoGemm = !adapted && siluFused(n, h, ffn);
        // Decode steps (one token per sequence, no prompt tiles): RoPE and the K/V store go into attention.
        boolean ropeInAttention = fuse && inputs.numTokens == inputs.numSequences && inputs.numTiles == 0
                && CudaKernels.combinesPartitions(attentionVariant, config.headDim());
        CudaLora.Step loraInputs = new CudaLora.Step(section(StepInputs.ADAPTER_SLOTS), section(StepInputs.LORA_ORDER),
                section(StepInputs.LORA_TILE_START), section(StepInputs.LORA_TILE_COUNT), inputs.numLoraTiles > 0,
                List.copyOf(inputs.loraRuns));
        phase("embed", () -> kernels.embedRows(n, section(StepInputs.TOKENS), weights.embedding(), s.x, h));
        for (int l = 0; l < config.numLayers(); l++) {
            CudaWeights.Layer w = weights.layers().get(l);
            int layer = l;
            phase("norm", () -> kernels.rmsNorm(n, s.x, 0, w.attnNorm(), s.xn, h, eps));
            phase("qkv gemm", () -> linear(w.qkv(), s.xn, s.qkv, n, qkvDim, h, CuBlas.Out.F32));
            if (adapted) {
                phase("lora qkv", () -> lora.apply(CudaLora.Group.QKV, n, layer, loraInputs, s.xn, s.qkv, false));
            }
            if (!ropeInAttention) {
                phase("rope + kv store", () -> kernels.qkvRopeStore(n, s.qkv, w.qkvBias(), weights.invFreq(),
                        section(StepInputs.POSITIONS), section(StepInputs.SLOTS), s.q, cache.keys(layer),
                        cache.values(layer), config.numHeads(), config.numKvHeads(), config.headDim()));
            }
            attention(n, plan, l, w, ropeInAttention);
            phase("o gemm", () -> linear(w.o(), s.attn, s.x, n, h, config.qDim(), CuBlas.Out.F32_ADD));
            if (adapted) {
                phase("lora o", () -> lora.apply(CudaLora.Group.O, n, layer, loraInputs, s.attn, s.x, false));
            }
            phase("norm", () -> kernels.rmsNorm(n, s.x, 0, w.ffnNorm(), s.xn, h, eps));
            if (siluIntoGemm) {
                phase("gate/up gemm + silu", () -> kernels.skinnyGateUpSilu(w.gateUp(), s.xn, s.act, ffn, h));
            } else if (!adapted && siluInDecodeGemm(n, ffn, h)) {
                phase("gate/up gemm + silu", () -> kernels.decodeGemm(w.gateUp(), s.xn, s.act, n, ffn, h,
                        CudaKernels.GEMM_SILU, s.gemm));
            } else {
                phase("gate/up gemm", () -> linear(w.gateUp(), s.xn, s.gateUp, n, 2 * ffn, h, CuBlas.Out.BF16));
                if (adapted) {
                    phase("lora gate/up", () -> lora.apply(CudaLora.Group.GATE_UP, n, layer, loraInputs, s.xn, s.gateUp,
                            true));
                }
                phase("silu*up", () -> kernels.siluMul(n, ffn, s.gateUp, s.act));
            }
            phase("down gemm", () -> linear(w.down(), s.act, s.x, n, h, ffn, CuBlas.Out.F32_ADD));
            if (adapted) {
                phase("lora down", () -> lora.apply(CudaLora.Group.DOWN, n, layer, loraInputs, s.act, s.x, false));
            }
        }
    }

    private void phase(String name, Runnable op) {
        if (skippedPhases.contains(name)) {
            return;
        }
        if (profile == null) {
            op.run();
        } else {
            profile.time(name, op);
        }
    }

    /**
     * Prompt tiles (if any) on the tensor-core prefill kernel; the other tokens, or all {@code n} when
     * there are no tiles (decode steps, graphs, padding included), on the paged kernel. With {@code rope}
     * (decode steps only) the paged kernel also rotates q and k and stores the new K/V (that layer's bias).
     */
    private void attention(int n, AttentionPlan plan, int layer, CudaWeights.Layer w, boolean rope) {
        int heads = config.numHeads(), group = heads / config.numKvHeads();
        long tables = inputsDevice.address(inputs.tablesOffset());
        long tokSeq = section(StepInputs.TOKEN_SEQUENCE), positions = section(StepInputs.POSITIONS);
        boolean tiles = inputs.numTiles > 0;
        if (tiles) {
            phase("attention (prefill)", () -> kernels.flashPrefill(inputs.numTiles, heads, config.numKvHeads(),
                    config.headDim(), scratch.q, cache.keys(layer), cache.values(layer), tables, tokSeq, positions,
                    section(StepInputs.TILES), scratch.attn, cache.blockSize, inputs.maxBlocks, attentionScale));
        }
        int count = tiles ? inputs.numPagedTokens : n;
        long list = tiles ? section(StepInputs.PAGED_TOKENS) : 0;
        if (count == 0) {
            return;
        }
        if (plan.parts() > 1 && (long) count * heads * plan.parts() > scratch.partialRows) {
            throw new IllegalStateException("attention plan " + plan + " for " + count + " tokens exceeds the partial buffer");
        }
        if (rope) {
            phase("attention (paged) + rope", () -> kernels.pagedAttentionRope(count, config.numKvHeads(), plan.parts(),
                    config.headDim(), group, scratch.qkv, w.qkvBias(), weights.invFreq(), section(StepInputs.SLOTS),
                    cache.keys(layer), cache.values(layer), tables, tokSeq, positions, scratch.attn, scratch.partOut,
                    scratch.partMl, scratch.attentionCounters, heads, cache.blockSize, inputs.maxBlocks, plan.partSize(),
                    attentionScale, cache.numBlocks * cache.blockSize));
            return;
        }
        phase("attention (paged)", () -> kernels.pagedAttention(attentionVariant, count, config.numKvHeads(), plan.parts(),
                config.headDim(), group, scratch.q, cache.keys(layer), cache.values(layer), tables, tokSeq, positions, list,
                scratch.attn, scratch.partOut, scratch.partMl, scratch.attentionCounters, heads, cache.blockSize,
                inputs.maxBlocks, plan.partSize(), attentionScale, cache.numBlocks * cache.blockSize));
        if (plan.parts() > 1 && !CudaKernels.combinesPartitions(attentionVariant, config.headDim())) {
            phase("attention reduce", () -> kernels.attentionReduce(count, heads, scratch.partOut, scratch.partMl, positions,
                    list, scratch.attn, config.headDim(), plan.parts(), plan.partSize()));
        }
    }

    /** One token on the skinny path: SiLU goes into the gate/up GEMV. */
    private boolean siluFused(int n, int hidden, int ffn) {
        return fuse && n == 1 && n <= skinnyMaxTokens && kernels.canFuseGateUp(ffn, hidden);
    }

    /** Past the skinny path: the gate/up product and SiLU in one decode GEMM. */
    private boolean siluInDecodeGemm(int n, int ffn, int hidden) {
        return decodeGemm && n > skinnyMaxTokens && kernels.decodeGemmVariant(n, ffn, hidden, CudaKernels.GEMM_SILU) != null;
    }

    private void linear(long w, long x, long y, int n, int out, int in, CuBlas.Out mode) {
        if (n <= skinnyMaxTokens && in % 8 == 0) {
            kernels.skinnyGemm(w, x, y, n, out, in, mode.ordinal());
        } else if (decodeGemm && kernels.decodeGemmVariant(n, out, in, mode.ordinal()) != null) {
            kernels.decodeGemm(w, x, y, n, out, in, mode.ordinal(), scratch.gemm);
        } else {
            gemms.linear(w, x, y, n, out, in, mode);
        }
    }

    /** Final norm and LM head for {@code count} rows (row indices at {@code rows}, or the first rows if 0). */
    private void computeLogits(long rows, int count) {
        phase("norm", () -> kernels.rmsNorm(count, scratch.x, rows, weights.finalNorm(), scratch.logitsNormed,
                config.hiddenSize(), config.rmsNormEps()));
        phase("lm head gemm", () -> linear(weights.lmHead(), scratch.logitsNormed, scratch.logits.address(), count,
                config.vocabSize(), config.hiddenSize(), CuBlas.Out.F32));
    }

    /**
     * Runs {@code batch} eagerly with device events around every launch and returns GPU milliseconds
     * per phase (summed over layers) and {@code "step (wall)"}, the step's wall time under profiling.
     */
    synchronized java.util.Map<String, Double> profile(List<SequenceForward> batch) {
        checkOpen();
        device.makeCurrent();
        profile = new CudaProfile(device);
        try {
            long start = System.nanoTime();
            forwardGreedy(batch);
            double wall = (System.nanoTime() - start) / 1e6;
            java.util.Map<String, Double> ms = profile.millis();
            ms.put("step (wall)", wall);
            return ms;
        } finally {
            profile = null;
        }
    }

    private List<float[][]> readLogits(List<SequenceForward> batch, boolean logitsReady) {
        int vocab = config.vocabSize(), rows = inputs.numLogitRows;
        float[][] all = new float[rows][];
        FloatBuffer host = logitsHost.asFloatBuffer();
        for (int r0 = 0; r0 < rows; r0 += scratch.logitRows) {
            int count = Math.min(scratch.logitRows, rows - r0);
            if (!logitsReady) {
                computeLogits(rowsAddress(r0), count);
            }
            long offset = logitsReady ? 4L * r0 * vocab : 0;
            device.download(logitsHost, scratch.logits, offset, 4L * count * vocab);
            device.synchronize();
            for (int i = 0; i < count; i++) {
                all[r0 + i] = new float[vocab];
                host.get(i * vocab, all[r0 + i]);
            }
        }
        List<float[][]> result = new ArrayList<>(batch.size());
        int row = 0;
        for (SequenceForward s : batch) {
            int count = s.logits() == LogitsMode.NONE ? 0 : s.logits() == LogitsMode.LAST ? 1 : s.numTokens();
            float[][] seqRows = new float[count][];
            for (int i = 0; i < count; i++) {
                seqRows[i] = all[row++];
            }
            result.add(seqRows);
        }
        if (rows == 0) {
            device.synchronize();  // NOTE: the step's errors surface here rather than in the next one
        }
        return result;
    }

    @Override
    public synchronized void copyBlocks(int[] src, int[] dst) {
        checkOpen();
        if (src.length != dst.length) {
            throw new IllegalArgumentException("copyBlocks: " + src.length + " sources, " + dst.length + " destinations");
        }
        device.makeCurrent();
        int max = (int) (copyHost.capacity() / 8);
        for (int start = 0; start < src.length; start += max) {
            int count = Math.min(max, src.length - start);
            IntBuffer ints = copyHost.asIntBuffer();
            for (int i = 0; i < count; i++) {
                int a = src[start + i], b = dst[start + i];
                if (a < 0 || a >= cache.numBlocks || b < 0 || b >= cache.numBlocks) {
                    throw new IllegalArgumentException("copyBlocks: block " + (a < 0 || a >= cache.numBlocks ? a : b)
                            + " outside the pool of " + cache.numBlocks);
                }
                ints.put(i, a);
                ints.put(max + i, b);
            }
            device.upload(copyDevice, 0, copyHost, copyHost.capacity());
            kernels.copyBlocks(count, cache.planes(), cache.base(), copyDevice.address(), copyDevice.address(4L * max),
                    cache.planeBytes, cache.blockBytes);
            device.synchronize();
        }
    }

    /** Waits for the GPU (benchmarks). */
    void synchronize() {
        device.makeCurrent();
        device.synchronize();
    }

    /** Fills the whole K/V cache with small random values (benchmarks: attention over garbage is the same speed). */
    void randomizeKvCache(long seed) {
        device.makeCurrent();
        long elements = cache.planes() * cache.planeBytes / 2;
        kernels.fillUniformBf16(cache.base(), elements, seed, 0f, 0.5f);
        device.synchronize();
    }

    int graphCount() {
        return graphs.size();
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("CUDA backend is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.makeCurrent();
        graphs.close();
        gemms.close();
        blas.close();
        kernels.close();
        device.close();
    }
}
