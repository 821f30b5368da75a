package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import io.kvass.worker.model.ModelLoadException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;

/**
 * kvass's own kernels ({@code src/main/cuda/*.cu}), loaded from the fatbins the build put on the
 * classpath, with one typed launch method per kernel. All launches go to the device's stream.
 * Device pointers are raw addresses ({@code 0} for "none").
 */
final class CudaKernels implements AutoCloseable {
    private static final String[] MODULES = {"layers", "attention", "prefill", "decode", "sample", "lora", "gemm"};
    /** Head dims the attention kernel is instantiated for (D / 8 a power of two). */
    static final int[] HEAD_DIMS = {8, 16, 32, 64, 128, 256};
    /** Largest number of query heads sharing one K/V head. */
    static final int MAX_GROUP = 8;
    static final int SKINNY_MAX_TOKENS = 8;

    private final CudaDevice device;
    /**
     * Skinny GEMM rows get enough warps for this many waves of the GPU (64 warps per SM); see {@link #skinnySplit}.
     * Batch-1 decode on the H100 (Llama-3-8B shape): 0.5 -> 6.46 ms, 1 -> 6.52, 2 -> 6.55-6.60, 4 -> 6.48 (noise ~0.1).
     */
    private double skinnyWaves = Double.parseDouble(System.getProperty("kvass.cuda.skinnyWaves", "0.5"));
    /** Steps of at most this many tokens spread each token's RoPE / K/V store over several blocks. */
    private int ropeSplitMaxTokens = Integer.getInteger("kvass.cuda.ropeSplitMaxTokens", 8);
    private final Map<String, CUmodule> modules = new HashMap<>();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final java.util.Set<String> prefillReady = new java.util.HashSet<>();
    /** {@link #tensorMap}'s descriptors. */
    private final Map<TensorMapKey, long[]> tensorMaps = new HashMap<>();
    /** {@link #kvMap}'s descriptors. */
    private final Map<KvMapKey, long[]> kvMaps = new HashMap<>();
    private static final double LOG2_E = 1.4426950408889634;

    CudaKernels(CudaDevice device) {
        this.device = device;
        device.makeCurrent();
        for (String name : MODULES) {
            modules.put(name, loadModule(name));
        }
    }

    /** The benchmarks' modules (probe, probe_attention) load on first use, the others up front. */
    private static CUmodule loadModule(String name) {
        CUmodule module = new CUmodule();
        cuModuleLoadData(module, fatbin(name));
        return module;
    }

    static byte[] fatbin(String name) {
        String resource = name + ".fatbin";
        try (InputStream in = CudaKernels.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new ModelLoadException("--device cuda: this build has no CUDA kernels (" + resource
                        + " missing from the classpath: nvcc was absent when kvass-worker was built; rebuild where "
                        + "/usr/local/cuda/bin/nvcc exists)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static boolean hasKernels() {
        for (String name : MODULES) {
            if (CudaKernels.class.getResource(name + ".fatbin") == null) {
                return false;
            }
        }
        return true;
    }

    private CUfunction function(String module, String name) {
        return functions.computeIfAbsent(name, n -> {
            CUfunction f = new CUfunction();
            cuModuleGetFunction(f, modules.computeIfAbsent(module, CudaKernels::loadModule), n);
            return f;
        });
    }

    /** Kernel arguments by value: Long (addresses, 64-bit), Integer, Float. */
    private static Pointer args(Object... values) {
        Pointer[] pointers = new Pointer[values.length];
        for (int i = 0; i < values.length; i++) {
            pointers[i] = switch (values[i]) {
                case Long l -> Pointer.to(new long[] {l});
                case Integer n -> Pointer.to(new int[] {n});
                case Float f -> Pointer.to(new float[] {f});
                case long[] words -> Pointer.to(words); // a struct by value (a CUtensorMap)
                default -> throw new IllegalArgumentException("kernel argument of type " + values[i].getClass());
            };
        }
        return Pointer.to(pointers);
    }

    private void launch(String module, String kernel, int gx, int gy, int gz, int block, Object... values) {
        launchShared(module, kernel, gx, gy, gz, block, 0, values);
    }

    private void launchShared(String module, String kernel, int gx, int gy, int gz, int block, int sharedBytes,
                              Object... values) {
        if (gx == 0 || gy == 0 || gz == 0) {
            return;
        }
        cuLaunchKernel(function(module, kernel), gx, gy, gz, block, 1, 1, sharedBytes, device.stream(), args(values), null);
    }

    /** x[t, :] = emb[tokens[t], :] as fp32. */
    void embedRows(int n, long tokens, long embedding, long x, int hidden) {
        launch("layers", "embed_rows", n, 1, 1, 256, tokens, embedding, x, hidden);
    }

    /** out[i, :] = bf16(rmsnorm(x[rows[i], :]) * w); rows == 0: row i. */
    void rmsNorm(int numRows, long x, long rows, long weight, long out, int hidden, float eps) {
        launch("layers", "rms_norm", numRows, 1, 1, 256, x, rows, weight, out, hidden, eps);
    }

    void qkvRopeStore(int n, long qkv, long bias, long invFreq, long positions, long slots, long qOut, long kCache,
                      long vCache, int heads, int kvHeads, int headDim) {
        int pairs = (heads + kvHeads) * headDim / 2;
        int perToken = n <= ropeSplitMaxTokens ? Math.max(1, (pairs + 127) / 128) : 1;
        launch("layers", "qkv_rope_store", n, perToken, 1, 128, qkv, bias, invFreq, positions, slots, qOut, kCache, vCache,
                heads, kvHeads, headDim);
    }

    void siluMul(int n, int ffn, long gateUp, long out) {
        int perThread = ffn % 8 == 0 ? 8 : 1;
        int blocksPerRow = (ffn / perThread + 255) / 256;
        launch("layers", "silu_mul", blocksPerRow, n, 1, 256, gateUp, out, n, ffn);
    }

    void copyBlocks(int pairs, int planes, long cache, long src, long dst, long planeBytes, int blockBytes) {
        launch("layers", "copy_blocks", pairs, planes, 1, 256, cache, src, dst, planeBytes, blockBytes);
    }

    void fillUniformBf16(long p, long n, long seed, float offset, float scale) {
        launch("layers", "fill_uniform_bf16", fillGrid(n), 1, 1, 256, p, n, seed, offset, scale);
    }

    /** Reads {@code bytes} (a multiple of 16) from {@code p} and nothing else: the read bandwidth ceiling (benchmarks). */
    void readOnly(long p, long bytes, long sink) {
        launch("layers", "read_only", 2 * device.multiprocessors, 1, 1, 1024, p, bytes / 16, 0x9e3779b9, sink);
    }

    /**
     * Benchmarks (probe.cu, sm_90): today's decode attention read pattern without the arithmetic, a block
     * per (sequence, kv head) of {@code batch} sequences, {@code blocks} paged blocks each.
     */
    void readPatternHead(long k, long v, long tables, int maxBlocks, int batch, int blocks, int kvHeads, int headBytes,
                         int rowStride, long sink) {
        int shared = 4 * 4 * 16 * rowStride;
        allowDynamicShared("probe", "read_pattern_head", 4 * 4 * 16 * (headBytes + 16));  // the largest stride used
        launchShared("probe", "read_pattern_head", kvHeads, batch, 1, 128, shared, k, v, tables, maxBlocks, blocks,
                kvHeads, headBytes, rowStride, sink);
    }

    /**
     * Benchmarks (probe_attention.cu): the tensor-core decode kernel (its default loads) without its
     * per-tile arithmetic, arguments as {@link #pagedAttention}'s; the output is meaningless.
     */
    void pagedAttentionWithoutMath(int n, int kvHeads, int headDim, int group, long q, long kCache, long vCache,
                                   long blockTables, long tokSeq, long positions, long out, long counters, int heads,
                                   int blockSize, int maxBlocks, int partSize, float scale, int cacheSlots) {
        AttentionLoads loads = attentionLoads(blockSize, headDim);
        String kernel = "probe_no_math_paged_attention_mma" + loads.suffix + "_d" + headDim;
        allowDynamicShared("probe_attention", kernel, DECODE_ATTENTION_SHARED_MAX);
        Object[] args = {q, kCache, vCache, blockTables, tokSeq, positions, 0L, out, 0L, 0L, counters, heads, kvHeads, group,
                blockSize, maxBlocks, partSize, scale};
        launchShared("probe_attention", kernel, kvHeads, n, 1, 128, loads.sharedBytes(headDim),
                withMaps(args, loads, kCache, vCache, cacheSlots, kvHeads, headDim));
    }

    /** Benchmarks (probe.cu, sm_90): whole paged blocks (all kv heads), a block per (sequence, part). */
    void readPatternSequence(long k, long v, long tables, int maxBlocks, int batch, int parts, int blocks, int blockBytes,
                             int stages, long sink) {
        int shared = 2 * stages * blockBytes;
        allowDynamicShared("probe", "read_pattern_seq", shared);
        launchShared("probe", "read_pattern_seq", batch, parts, 1, 128, shared, k, v, tables, maxBlocks, blocks,
                blockBytes, stages, sink);
    }

    void fillUniformF32(long p, long n, long seed, float offset, float scale) {
        launch("layers", "fill_uniform_f32", fillGrid(n), 1, 1, 256, p, n, seed, offset, scale);
    }

    /** Holds the stream back for {@code nanos} ns (one spinning thread): timed launches queued behind it run back to back. */
    void spin(long nanos) {
        launch("layers", "spin_ns", 1, 1, 1, 1, nanos);
    }

    private int fillGrid(long n) {
        return (int) Math.max(1, Math.min((n + 255) / 256, (long) device.multiprocessors * 32));
    }

    void argmaxRows(int rows, long logits, long ids, int vocab, ArgmaxScratch scratch) {
        int slices = (int) Math.max(1, Math.min(ArgmaxScratch.MAX_SLICES, (4L * device.multiprocessors + rows - 1) / rows));
        if (rows > scratch.rows()) {
            throw new IllegalArgumentException(rows + " rows, argmax scratch for " + scratch.rows());
        }
        launch("layers", "argmax_rows", rows, slices, 1, 256, logits, ids, vocab, scratch.values(), scratch.indices(),
                scratch.counters());
    }

    /** Bytes of one row descriptor of {@link #sampleRows} ({@code SampleRow} in sample.cu). */
    static final int SAMPLE_ROW_BYTES = 32;
    static final int SAMPLE_THREADS = 512;

    /**
     * ids[i] = the token drawn for descriptor i at {@code rows} (temperature, top_p, min_p, top_k, seed,
     * position, logits row), -1 where the row has no finite logit; see sample.cu.
     */
    void sampleRows(int count, long logits, long rows, long ids, int vocab) {
        launch("sample", "sample_rows", count, 1, 1, SAMPLE_THREADS, logits, rows, ids, vocab);
    }

    /**
     * Structured outputs: for each of {@code count} rows ({@code rows}: logits row indexes), sets to -inf every
     * logit whose bit is clear in that row's {@code words} 32-bit mask words ({@code masks}, row-major).
     */
    void applyTokenBitmask(int count, long logits, long rows, long masks, int words, int vocab) {
        launch("sample", "apply_token_bitmask", count, (words + 255) / 256, 1, 256, logits, rows, masks, words, vocab);
    }

    /** Words of one {@link #logprobRows} result: logprob, count, then 20 (id, logprob) pairs. */
    static final int LOGPROB_WORDS = 2 + 2 * 20;

    /**
     * For request j ({@code requests}: [descriptor index, n] int pairs), {@code out[j]} = the raw
     * log-softmax logprob of the token {@link #sampleRows} drew for that descriptor, the count of listed
     * tokens, and the n most likely (id, logprob) pairs; see sample.cu's logprob_rows.
     */
    void logprobRows(int count, long logits, long rows, long ids, long requests, int vocab, long out) {
        launch("sample", "logprob_rows", count, 1, 1, SAMPLE_THREADS, logits, rows, ids, requests, vocab, out);
    }

    /** y (+)= x w^T for n <= {@link #SKINNY_MAX_TOKENS} tokens; mode 0 bf16 out, 1 fp32 out, 2 fp32 accumulate. */
    void skinnyGemm(long w, long x, long y, int n, int out, int k, int mode) {
        skinnyGemm(w, x, y, n, out, k, mode, skinnySplit(out, k));
    }

    /** As above with {@code split} warps per row (1, 2, 4 or 8; probes compare them). */
    void skinnyGemm(long w, long x, long y, int n, int out, int k, int mode, int split) {
        int variant = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
        int rowsPerBlock = 8 / split;
        launch("layers", "skinny_gemm_n" + variant, (out + rowsPerBlock - 1) / rowsPerBlock, 1, 1, 256, w, x, y, n, out,
                k, mode, split);
    }

    /** Warps per output row of the skinny GEMM: enough warps for about two waves of the GPU (64 per SM), at most 8. */
    int skinnySplit(int out, int k) {
        long wanted = (long) (skinnyWaves * 64 * device.multiprocessors);
        int split = 1;
        while (split < 8 && (long) out * split < wanted && k / 8 >= 64 * split) {
            split *= 2;
        }
        return split;
    }

    /** Benchmarks: the skinny GEMM's split policy and the RoPE kernel's blocks per token (graphs must be re-captured). */
    void tune(double waves, int ropeSplitTokens) {
        this.skinnyWaves = waves;
        this.ropeSplitMaxTokens = ropeSplitTokens;
    }

    /** Blocks of the fused skinny kernels: they stride over row groups, at most 8 blocks (full occupancy) per SM. */
    private int fusedGrid(long groups) {
        return (int) Math.max(1, Math.min(groups, 8L * device.multiprocessors));
    }

    /** Whether {@link #skinnyGateUpSilu} can run this shape (a gate row and its up row share a block of 8 warps). */
    boolean canFuseGateUp(int ffn, int k) {
        return k % 8 == 0 && skinnySplit(2 * ffn, k) <= 4;
    }

    /**
     * act = silu(gate) * up for one token straight from the fused [gate; up] weight and the normed bf16
     * input (bit-identical to {@link #skinnyGemm} in bf16 then {@link #siluMul}).
     */
    void skinnyGateUpSilu(long w, long x, long act, int ffn, int k) {
        int split = skinnySplit(2 * ffn, k);
        long groups = (ffn + 4 / split - 1) / (4 / split);
        launch("layers", "skinny_gate_up_silu_n1", fusedGrid(groups), 1, 1, 256, w, x, act, ffn, k, split);
    }

    /**
     * Where {@link #argmaxRows} leaves each row's slices and counts their arrivals: values [rows,
     * MAX_SLICES] fp32, indices [rows, MAX_SLICES] int, counters [rows] int (zeroed once; 0 between launches).
     */
    record ArgmaxScratch(int rows, long values, long indices, long counters) {
        static final int MAX_SLICES = 64;

        static long bytes(int rows) {
            return 8L * rows * MAX_SLICES + 4L * rows;
        }

        static ArgmaxScratch allocate(CudaDevice device, int rows) {
            DeviceBuffer b = device.allocate(bytes(rows), "argmax slices");
            device.zero(b);
            long values = b.address();
            return new ArgmaxScratch(rows, values, values + 4L * rows * MAX_SLICES, values + 8L * rows * MAX_SLICES);
        }
    }

    /**
     * Where {@link #decodeGemm} keeps its stream-K partial sums and flags: workspace [SMs, 256 threads,
     * {@link #DECODE_GEMM_MAX_ACC}] fp32, flags [SMs] ints (zeroed once; 0 between launches).
     */
    record GemmScratch(long workspace, long flags) {
        static long bytes(int multiprocessors) {
            return 4L * multiprocessors * (256L * DECODE_GEMM_MAX_ACC + 1);
        }

        static GemmScratch allocate(CudaDevice device) {
            DeviceBuffer b = device.allocate(bytes(device.multiprocessors), "decode GEMM partial sums");
            device.zero(b);
            return new GemmScratch(b.address() + 4L * device.multiprocessors, b.address());
        }
    }

    /** Accumulators per thread of the largest decode GEMM variant (gemm.cu: 64 MT NB). */
    static final int DECODE_GEMM_MAX_ACC = 128;
    /** Dynamic shared memory of the decode GEMM (gemm.cu's GEMM_SMEM). */
    private static final int DECODE_GEMM_SHARED_BYTES = 200 * 1024;
    /** Rows of X (tokens) the decode GEMM takes. */
    static final int DECODE_GEMM_MAX_TOKENS = 256;
    /** gemm.cu's GEMM_SILU: act = silu(gate) * up from the fused [gate; up] weight, bf16 [m, n]. */
    static final int GEMM_SILU = 3;

    /**
     * The decode GEMM's variant for {@code m} tokens and {@code n} output columns ({@code mode}
     * {@link #GEMM_SILU}: n = ffn), or null when it cannot run them: Hopper (sm_90) only, m <= 256 (SiLU:
     * 128), k a multiple of 64, n a multiple of 128.
     */
    String decodeGemmVariant(int m, int n, int k, int mode) {
        if (device.computeCapability != 90 || m < 1 || m > DECODE_GEMM_MAX_TOKENS || k % 64 != 0 || k <= 0) {
            return null;
        }
        int mt = m <= 128 ? 1 : 2;
        if (mode == GEMM_SILU) {
            // A tile is 128 gate rows and their 128 up rows.
            return mt == 1 && n % 128 == 0 ? "decode_gemm_m1_n2" : null;
        }
        if (n % 128 != 0) {
            return null;
        }
        // 256-row tiles only where there are tiles for every SM: a tile cut into many shares costs the
        // owner a read of every partial sum (128 KB each).
        int nb = mt == 1 && n % 256 == 0 && n / 256 >= device.multiprocessors ? 2 : 1;
        return "decode_gemm_m" + mt + "_n" + nb;
    }

    /**
     * y[m, n] (mode 0 bf16, 1 fp32, 2 fp32 +=) = x[m, k] w[n, k]^T on wgmma, stream-K over one CTA per SM;
     * mode {@link #GEMM_SILU}: y = act[m, n] = silu(gate) * up with w the fused [gate; up] weight [2n, k].
     * Needs {@link #decodeGemmVariant}.
     */
    void decodeGemm(long w, long x, long y, int m, int n, int k, int mode, GemmScratch scratch) {
        String kernel = decodeGemmVariant(m, n, k, mode);
        if (kernel == null) {
            throw new IllegalArgumentException("no decode GEMM for m=" + m + " n=" + n + " k=" + k + " mode " + mode);
        }
        decodeGemm(kernel, device.multiprocessors, w, x, y, m, n, k, mode, scratch);
    }

    /** As above with the variant and the grid chosen (probes: {@code ctas} >= tiles is one tile per CTA, no split). */
    void decodeGemm(String kernel, int ctas, long w, long x, long y, int m, int n, int k, int mode, GemmScratch scratch) {
        allowDynamicShared("gemm", kernel, DECODE_GEMM_SHARED_BYTES);
        long[] wmap = tensorMap(new TensorMapKey(w, mode == GEMM_SILU ? 2 * n : n, k, 128));
        long[] xmap = tensorMap(new TensorMapKey(x, m, k, 64));
        launchShared("gemm", kernel, ctas, 1, 1, 256, DECODE_GEMM_SHARED_BYTES, wmap, xmap, y, m, n, k, mode,
                scratch.workspace(), scratch.flags());
    }

    /** A row-major bf16 matrix [rows, cols] at {@code address}, read by TMA in boxes of 64 columns by {@code boxRows}. */
    private record TensorMapKey(long address, int rows, int cols, int boxRows) {
    }

    /**
     * The TMA descriptor of {@code key}'s matrix: boxes of 64 columns (128 bytes, 128-byte swizzled as
     * wgmma reads them) by {@code boxRows} rows; rows past the end read as zeros. Made once per key:
     * graphs capture the words by value.
     */
    private long[] tensorMap(TensorMapKey key) {
        return tensorMaps.computeIfAbsent(key, k -> encodeTensorMap(k.address(), new long[] {k.cols(), k.rows()},
                new long[] {2L * k.cols()}, new int[] {64, k.boxRows()}, "[" + k.rows() + ", " + k.cols() + "]"));
    }

    /**
     * cuTensorMapEncodeTiled of a bf16 tensor (dims innermost first, byte strides of the outer dims), boxes
     * {@code box}, 128-byte swizzled: the descriptor's 16 words, which kernels take by value.
     */
    private static long[] encodeTensorMap(long address, long[] dims, long[] strides, int[] box, String what) {
        org.bytedeco.cuda.cudart.CUtensorMap map = new org.bytedeco.cuda.cudart.CUtensorMap();
        int[] elementStrides = new int[dims.length];
        java.util.Arrays.fill(elementStrides, 1);
        int status = org.bytedeco.cuda.global.cudart.cuTensorMapEncodeTiled(map,
                org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, dims.length, CuBlas.raw(address), dims,
                strides, box, elementStrides,
                org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_INTERLEAVE_NONE,
                org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_SWIZZLE_128B,
                org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                org.bytedeco.cuda.global.cudart.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
        if (status != 0) {
            throw new IllegalStateException("cuTensorMapEncodeTiled " + what + " failed: " + status);
        }
        long[] words = new long[16];
        for (int i = 0; i < 16; i++) {
            words[i] = map.opaque(i);
        }
        map.close();
        return words;
    }

    /** lora.cu's shrink ({@code ranksPerBlock} 1 or 4) over {@code tiles} tile slots (StepInputs' LoRA sections at {@code order}, {@code tileStart}, {@code tileCount}). */
    void loraShrink(int ranksPerBlock, int tiles, int targets, int rankBlocks, int threads, long tokenSlots, long order, long tileStart,
                    long tileCount, long table, int numLayers, int layer, int firstTarget, long x, int in, long u,
                    int maxRank) {
        launch("lora", "lora_shrink_r" + ranksPerBlock, tiles, targets, rankBlocks, threads, tokenSlots, order, tileStart, tileCount, table,
                numLayers, layer, firstTarget, x, in, u, maxRank);
    }

    /** lora.cu's expand: grid (columnBlocks, tiles), the tile's shrunk rows in shared memory, 4 columns a thread. */
    void loraExpand(int columnBlocks, int tiles, int threads, int sharedBytes, long tokenSlots, long order, long tileStart,
                    long tileCount, long table, int numLayers, int layer, int firstTarget, int targets, long u, int maxRank,
                    long y, int yStride, int yBf16, int out0, int out1, int out2) {
        launchShared("lora", "lora_expand", columnBlocks, tiles, 1, threads, sharedBytes, tokenSlots, order, tileStart,
                tileCount, table, numLayers, layer, firstTarget, targets, u, maxRank, y, yStride, yBf16, out0, out1, out2);
    }

    static boolean supportsHeadDim(int headDim) {
        for (int d : HEAD_DIMS) {
            if (d == headDim) {
                return true;
            }
        }
        return false;
    }

    static int groupVariant(int group) {
        return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
    }

    /**
     * Paged attention for {@code n} query tokens; {@code parts} partitions of {@code partSize} keys.
     * With one partition the result goes to {@code out}, otherwise to the partial buffers.
     */
    /** Paged attention kernels: {@code block} syncs the block per key chunk, {@code warps} lets warps run apart. */
    enum AttentionVariant {
        BLOCK("paged_attention"), WARPS("paged_attention_warps"), WARPS4("paged_attention_warps4"),
        /** Tensor cores (head dims 64 and 128; others fall back to {@code WARPS4}). */
        MMA("paged_attention_mma");

        final String prefix;

        AttentionVariant(String prefix) {
            this.prefix = prefix;
        }
    }

    private boolean hasFunction(String module, String name) {
        if (functions.containsKey(name)) {
            return true;
        }
        try {
            function(module, name);
            return true;
        } catch (jcuda.CudaException e) {
            return false;
        }
    }

    void pagedAttention(AttentionVariant variant, int n, int kvHeads, int parts, int headDim, int group, long q,
                        long kCache, long vCache, long blockTables, long tokSeq, long positions, long tokenList, long out,
                        long partOut, long partMl, long counters, int heads, int blockSize, int maxBlocks, int partSize,
                        float scale, int cacheSlots) {
        if (combinesPartitions(variant, headDim)) {
            AttentionLoads loads = attentionLoads(blockSize, headDim);
            String kernel = variant.prefix + loads.suffix + "_d" + headDim;
            allowDynamicShared("decode", kernel, DECODE_ATTENTION_SHARED_MAX);
            Object[] args = {q, kCache, vCache, blockTables, tokSeq, positions, tokenList, out, partOut, partMl, counters,
                    heads, kvHeads, group, blockSize, maxBlocks, partSize, scale};
            launchShared("decode", kernel, kvHeads, n, parts, 128, loads.sharedBytes(headDim),
                    withMaps(args, loads, kCache, vCache, cacheSlots, kvHeads, headDim));
            return;
        }
        if (variant == AttentionVariant.MMA) {
            variant = AttentionVariant.WARPS4;
        }
        String suffix = "_d" + headDim + "_g" + groupVariant(group);
        String kernel = variant.prefix + suffix;
        if (variant == AttentionVariant.WARPS4 && !hasFunction("attention", kernel)) {
            kernel = AttentionVariant.WARPS.prefix + suffix;
        }
        launch("attention", kernel, kvHeads, n, parts, 128, q, kCache, vCache, blockTables, tokSeq, positions, tokenList,
                out, partOut, partMl, heads, kvHeads, group, blockSize, maxBlocks, partSize, scale);
    }

    /**
     * Decode steps only (every token its sequence's only one): {@link #qkvRopeStore} and the tensor-core
     * {@link #pagedAttention} in one kernel (decode.cu, ROPE): the queries rotated from the fp32 qkv rows,
     * the new K/V written by the block that owns their position. Needs {@link #combinesPartitions}.
     */
    void pagedAttentionRope(int n, int kvHeads, int parts, int headDim, int group, long qkv, long bias, long invFreq,
                            long slots, long kCache, long vCache, long blockTables, long tokSeq, long positions, long out,
                            long partOut, long partMl, long counters, int heads, int blockSize, int maxBlocks, int partSize,
                            float scale, int cacheSlots) {
        AttentionLoads loads = attentionLoads(blockSize, headDim);
        String kernel = "paged_attention_mma_rope" + loads.suffix + "_d" + headDim;
        allowDynamicShared("decode", kernel, DECODE_ATTENTION_SHARED_MAX);
        Object[] args = {qkv, bias, invFreq, slots, kCache, vCache, blockTables, tokSeq, positions, out, partOut, partMl,
                counters, heads, kvHeads, group, blockSize, maxBlocks, partSize, scale};
        launchShared("decode", kernel, kvHeads, n, parts, 128, loads.sharedBytes(headDim),
                withMaps(args, loads, kCache, vCache, cacheSlots, kvHeads, headDim));
    }

    /** The launch arguments, plus the K and V tensor maps for {@link AttentionLoads#TENSOR}. */
    private Object[] withMaps(Object[] args, AttentionLoads loads, long kCache, long vCache, int cacheSlots, int kvHeads,
                              int headDim) {
        if (loads != AttentionLoads.TENSOR) {
            return args;
        }
        Object[] all = java.util.Arrays.copyOf(args, args.length + 2);
        all[args.length] = kvMap(new KvMapKey(kCache, cacheSlots, kvHeads, headDim));
        all[args.length + 1] = kvMap(new KvMapKey(vCache, cacheSlots, kvHeads, headDim));
        return all;
    }

    /** A layer's K or V cache {@code [slots][kv heads][head dim]} bf16, as TMA reads it (decode.cu, TENSOR). */
    private record KvMapKey(long address, int slots, int kvHeads, int headDim) {
    }

    /**
     * The TMA descriptor of a K or V cache: boxes of {64 dims, 1 kv head, 16 slots}, 128-byte swizzled.
     * Made once per cache address; graphs capture the words by value.
     */
    private long[] kvMap(KvMapKey key) {
        long rowBytes = 2L * key.headDim();
        return kvMaps.computeIfAbsent(key, k -> encodeTensorMap(k.address(),
                new long[] {k.headDim(), k.kvHeads(), k.slots()}, new long[] {rowBytes, rowBytes * k.kvHeads()},
                new int[] {64, 1, 16}, "for a K/V cache of " + k.slots() + " slots"));
    }

    /** How the tensor-core decode kernel brings K/V tiles into shared memory. */
    enum AttentionLoads {
        /** 16-byte cp.async per lane into padded rows (any GPU). */
        CPASYNC(""),
        /** Tensor-map boxes of 16 slots x 64 dims, 128-byte swizzled rows (sm_90, block size a multiple of 16). */
        TENSOR("_tma");

        final String suffix;

        AttentionLoads(String suffix) {
            this.suffix = suffix;
        }

        int sharedBytes(int headDim) {
            // 4 warps x 2 buffers x K and V x 16 rows; TENSOR: dense 128-byte half rows plus 1 KB to align.
            return this == TENSOR ? 4 * 2 * 2 * 16 * 2 * headDim + 1024 : 4 * 4 * 16 * (headDim + 8) * 2;
        }

        static AttentionLoads fromProperty() {
            return valueOf(System.getProperty("kvass.cuda.attentionLoads", "tensor").toUpperCase(java.util.Locale.ROOT));
        }
    }

    /** The largest dynamic shared memory of the decode kernel's variants (head dim 128). */
    private static final int DECODE_ATTENTION_SHARED_MAX = AttentionLoads.CPASYNC.sharedBytes(128);

    /**
     * Default {@code -Dkvass.cuda.attentionLoads=tensor} (5-7% faster decode attention on the H100 than
     * cp.async: 4% shorter steps at batch 128); it falls back to CPASYNC before sm_90, for block sizes not a
     * multiple of 16 and head dims not a multiple of 64.
     */
    private AttentionLoads attentionLoads = AttentionLoads.fromProperty();

    void setAttentionLoads(AttentionLoads loads) {
        this.attentionLoads = loads;
    }

    private AttentionLoads attentionLoads(int blockSize, int headDim) {
        if (device.computeCapability < 90 || blockSize % 16 != 0 || headDim % 64 != 0) {
            return AttentionLoads.CPASYNC;
        }
        return attentionLoads;
    }

    /**
     * Whether {@link #pagedAttention} combines split-K partitions itself (the tensor-core kernel: its last
     * partition block per token and kv head does it); otherwise {@link #attentionReduce} must follow.
     */
    static boolean combinesPartitions(AttentionVariant variant, int headDim) {
        return variant == AttentionVariant.MMA && hasPrefillKernel(headDim);
    }

    void attentionReduce(int n, int heads, long partOut, long partMl, long positions, long tokenList, long out,
                         int headDim, int parts, int partSize) {
        launch("attention", "attention_reduce", n, (heads + 3) / 4, 1, 128, partOut, partMl, positions, tokenList, out, heads,
                headDim, parts, partSize);
    }

    /** Head dims the tensor-core prefill kernel is built for. */
    static boolean hasPrefillKernel(int headDim) {
        return headDim == 64 || headDim == 128;
    }

    /** Kernels using more than 48 KB of shared memory must say so once. */
    private void allowDynamicShared(String module, String kernel, int bytes) {
        if (bytes > 48 * 1024 && prefillReady.add(kernel)) {
            jcuda.driver.JCudaDriver.cuFuncSetAttribute(function(module, kernel),
                    jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
        }
    }

    /** Causal attention of query tiles ({@code [first token, count]} pairs at {@code tiles}) on tensor cores. */
    void flashPrefill(int numTiles, int heads, int kvHeads, int headDim, long q, long kCache, long vCache,
                      long blockTables, long tokSeq, long positions, long tiles, long out, int blockSize, int maxBlocks,
                      float scale) {
        String kernel = "flash_prefill_d" + headDim;
        int shared = 3 * 64 * (headDim + 8) * 2;
        allowDynamicShared("prefill", kernel, shared);
        launchShared("prefill", kernel, numTiles, heads, 1, 128, shared, q, kCache, vCache, blockTables, tokSeq,
                positions, tiles, out, heads, kvHeads, blockSize, maxBlocks, (float) (scale * LOG2_E));
    }

    @Override
    public void close() {
        device.makeCurrent();
        for (CUmodule m : modules.values()) {
            cuModuleUnload(m);
        }
        modules.clear();
        functions.clear();
    }
}
