package io.kvass.worker.model;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A llama2.c checkpoint ({@code run.c}'s legacy format: seven int32 header fields, then fp32 tensors),
 * exposed under Hugging Face tensor names. llama2.c rotates interleaved pairs while transformers
 * rotates halves, so q/k rows are permuted once at load, exactly as transformers' converter does.
 */
public final class Llama2cCheckpoint implements WeightSource {
    private static final int HEADER_BYTES = 7 * Integer.BYTES;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final ModelConfig config;
    private final Map<String, Tensor> tensors = new HashMap<>();

    private Llama2cCheckpoint(Path file, Arena arena, ModelConfig config) {
        this.file = file;
        this.arena = arena;
        this.config = config;
    }

    /** The checkpoint {@code .bin} in {@code dir}: any {@code .bin} that is not a tokenizer ({@code tok*.bin}). */
    public static Optional<Path> find(Path dir) {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> bins = files.filter(p -> p.getFileName().toString().endsWith(".bin"))
                    .filter(p -> !p.getFileName().toString().startsWith("tok"))
                    .sorted().toList();
            if (bins.size() > 1) {
                throw new ModelLoadException("several llama2.c checkpoints in " + dir + ": " + bins);
            }
            return bins.stream().findFirst();
        } catch (IOException e) {
            throw new ModelLoadException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    public static Llama2cCheckpoint open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            if (channel.size() < HEADER_BYTES) {
                throw new ModelLoadException("llama2.c checkpoint " + file + " is shorter than its header");
            }
            MemorySegment data = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            int[] h = new int[7];
            for (int i = 0; i < 7; i++) {
                h[i] = data.getAtIndex(INT, i);
            }
            ModelConfig config = configOf(h, file);
            Llama2cCheckpoint ckpt = new Llama2cCheckpoint(file, arena, config);
            ckpt.mapTensors(data.asSlice(HEADER_BYTES), h[5] > 0, h[6]);
            return ckpt;
        } catch (IOException e) {
            arena.close();
            throw new ModelLoadException("cannot read " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static ModelConfig configOf(int[] h, Path file) {
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocab = Math.abs(h[5]), seqLen = h[6];
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab == 0 || seqLen <= 0
                || dim % heads != 0) {
            throw new ModelLoadException("llama2.c checkpoint " + file + " has an invalid header " + java.util.Arrays.toString(h));
        }
        return new ModelConfig(Architecture.LLAMA, dim, hidden, layers, heads, kvHeads, dim / heads, vocab, 1e-5f,
                RopeScaling.plain(10000.0), seqLen, h[5] > 0, false, OptionalInt.of(1), Set.of(2));
    }

    public ModelConfig config() {
        return config;
    }

    /** Walks run.c's {@code memory_map_weights} order. */
    private void mapTensors(MemorySegment data, boolean shared, int seqLen) {
        ModelConfig c = config;
        long dim = c.hiddenSize(), kv = c.kvDim(), ffn = c.intermediateSize(), hd = c.headDim();
        Cursor at = new Cursor(data, file);
        put("model.embed_tokens.weight", at.take(c.vocabSize(), dim));
        MemorySegment attnNorm = at.raw(c.numLayers() * dim);
        MemorySegment wq = at.raw(c.numLayers() * dim * dim);
        MemorySegment wk = at.raw(c.numLayers() * kv * dim);
        MemorySegment wv = at.raw(c.numLayers() * kv * dim);
        MemorySegment wo = at.raw(c.numLayers() * dim * dim);
        MemorySegment ffnNorm = at.raw(c.numLayers() * dim);
        MemorySegment w1 = at.raw(c.numLayers() * ffn * dim);
        MemorySegment w2 = at.raw(c.numLayers() * dim * ffn);
        MemorySegment w3 = at.raw(c.numLayers() * ffn * dim);
        put("model.norm.weight", at.take(dim));
        at.raw(seqLen * hd / 2); // freq_cis_real: llama2.c's precomputed RoPE, recomputed by us
        at.raw(seqLen * hd / 2); // freq_cis_imag
        if (!shared) {
            put("lm_head.weight", at.take(c.vocabSize(), dim));
        }
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            put(p + "input_layernorm.weight", slice(attnNorm, i, dim));
            put(p + "self_attn.q_proj.weight", permuteForRotateHalf(slice(wq, i, dim, dim), c.numHeads()));
            put(p + "self_attn.k_proj.weight", permuteForRotateHalf(slice(wk, i, kv, dim), c.numKvHeads()));
            put(p + "self_attn.v_proj.weight", slice(wv, i, kv, dim));
            put(p + "self_attn.o_proj.weight", slice(wo, i, dim, dim));
            put(p + "post_attention_layernorm.weight", slice(ffnNorm, i, dim));
            put(p + "mlp.gate_proj.weight", slice(w1, i, ffn, dim));
            put(p + "mlp.down_proj.weight", slice(w2, i, dim, ffn));
            put(p + "mlp.up_proj.weight", slice(w3, i, ffn, dim));
        }
    }

    private void put(String name, Tensor t) {
        tensors.put(name, new Tensor(name, t.dtype(), t.shape(), t.data()));
    }

    private static Tensor slice(MemorySegment all, int layer, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return new Tensor("", DType.F32, shape, all.asSlice(layer * n * Float.BYTES, n * Float.BYTES));
    }

    /** Row {@code h*hd + 2i + j} (interleaved pairs) moves to {@code h*hd + j*hd/2 + i} (halves). */
    private Tensor permuteForRotateHalf(Tensor t, int heads) {
        int rows = (int) t.shape()[0], cols = (int) t.shape()[1], hd = rows / heads;
        long rowBytes = (long) cols * Float.BYTES;
        MemorySegment out = arena.allocate(rows * rowBytes, 64);
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < hd / 2; i++) {
                for (int j = 0; j < 2; j++) {
                    long src = (long) (h * hd + 2 * i + j) * rowBytes;
                    long dst = (long) (h * hd + j * (hd / 2) + i) * rowBytes;
                    MemorySegment.copy(t.data(), src, out, dst, rowBytes);
                }
            }
        }
        return new Tensor("", DType.F32, t.shape(), out);
    }

    /** Reads consecutive fp32 tensors, failing with the file's name when it runs short. */
    private static final class Cursor {
        private final MemorySegment data;
        private final Path file;
        private long offset;

        Cursor(MemorySegment data, Path file) {
            this.data = data;
            this.file = file;
        }

        MemorySegment raw(long floats) {
            long bytes = floats * Float.BYTES;
            if (offset + bytes > data.byteSize()) {
                throw new ModelLoadException("llama2.c checkpoint " + file + " is truncated: its header implies more weights");
            }
            MemorySegment s = data.asSlice(offset, bytes);
            offset += bytes;
            return s;
        }

        Tensor take(long... shape) {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return new Tensor("", DType.F32, shape, raw(n));
        }
    }

    @Override
    public Optional<Tensor> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    @Override
    public String describe() {
        return file.toString();
    }

    @Override
    public void close() {
        arena.close();
    }

}
