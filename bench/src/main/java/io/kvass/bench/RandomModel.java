package io.kvass.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Writes a random-weight Llama (config.json + bf16 model.safetensors) of a given shape, so benchmarks
 * can run a full-size model without downloading one. Weights are ~N(0, 0.02), norms 1.0; the output is
 * the same for the same seed.
 *
 * <pre>RandomModel OUT_DIR [llama-3.2-1b | tiny] [hidden=N ffn=N layers=N heads=N kv_heads=N vocab=N seed=N]</pre>
 */
public final class RandomModel {
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int BLOCK = 1 << 20;          // elements per independently seeded block (parallel, deterministic)
    private static final int CHUNK = 16 * BLOCK;       // elements per FileChannel write (32 MiB)
    private static final short ONE = (short) 0x3F80;   // 1.0 in bf16

    /** The shape knobs a Llama config.json needs for kvass and transformers alike. */
    public record Shape(int hidden, int ffn, int layers, int heads, int kvHeads, int vocab) {
        static Shape preset(String name) {
            return switch (name) {
                case "llama-3.2-1b" -> new Shape(2048, 8192, 16, 32, 8, 128256);
                case "tiny" -> new Shape(256, 1024, 2, 8, 2, 4096);
                default -> throw new IllegalArgumentException("unknown preset '" + name + "'; known: llama-3.2-1b, tiny");
            };
        }

        Shape with(String key, int value) {
            return switch (key) {
                case "hidden" -> new Shape(value, ffn, layers, heads, kvHeads, vocab);
                case "ffn" -> new Shape(hidden, value, layers, heads, kvHeads, vocab);
                case "layers" -> new Shape(hidden, ffn, value, heads, kvHeads, vocab);
                case "heads" -> new Shape(hidden, ffn, layers, value, kvHeads, vocab);
                case "kv_heads" -> new Shape(hidden, ffn, layers, heads, value, vocab);
                case "vocab" -> new Shape(hidden, ffn, layers, heads, kvHeads, value);
                default -> throw new IllegalArgumentException("unknown size '" + key + "'");
            };
        }

        int headDim() {
            return hidden / heads;
        }
    }

    private record Entry(String name, long[] shape, boolean norm) {
        long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private RandomModel() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 1) {
            System.err.println("usage: RandomModel OUT_DIR [llama-3.2-1b|tiny] [hidden=N ffn=N layers=N heads=N kv_heads=N vocab=N seed=N]");
            System.exit(2);
        }
        Path out = Path.of(args[0]);
        Shape shape = Shape.preset("llama-3.2-1b");
        long seed = 42;
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            int eq = a.indexOf('=');
            if (eq < 0) {
                shape = Shape.preset(a);
            } else if (a.startsWith("seed=")) {
                seed = Long.parseLong(a.substring(eq + 1));
            } else {
                shape = shape.with(a.substring(0, eq), Integer.parseInt(a.substring(eq + 1)));
            }
        }
        long t0 = System.nanoTime();
        long bytes = write(out, shape, seed);
        System.out.printf("wrote %s: %s, %.2f GB in %.1f s%n", out, shape, bytes / 1e9, (System.nanoTime() - t0) / 1e9);
    }

    /** Writes the model directory; returns the safetensors file size. */
    public static long write(Path dir, Shape s, long seed) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), config(s));
        List<Entry> entries = entries(s);
        byte[] header = header(entries);
        Path file = dir.resolve("model.safetensors");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
            writeFully(ch, len);
            writeFully(ch, ByteBuffer.wrap(header));
            ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK * 2);
            MemorySegment seg = MemorySegment.ofBuffer(chunk);
            for (int e = 0; e < entries.size(); e++) {
                Entry entry = entries.get(e);
                long numel = entry.numel();
                for (long start = 0; start < numel; start += CHUNK) {
                    int n = (int) Math.min(CHUNK, numel - start);
                    long firstBlock = start / BLOCK;
                    long tensorSeed = mix(seed * 1_000_003L + e);
                    IntStream.range(0, (n + BLOCK - 1) / BLOCK).parallel().forEach(b -> {
                        int from = b * BLOCK, to = Math.min(n, from + BLOCK);
                        if (entry.norm()) {
                            for (int i = from; i < to; i++) {
                                seg.setAtIndex(BF16, i, ONE);
                            }
                        } else {
                            fillNormal(seg, from, to, mix(tensorSeed + firstBlock + b));
                        }
                    });
                    writeFully(ch, chunk.clear().limit(n * 2));
                }
            }
            return ch.size();
        }
    }

    /**
     * ~N(0, 0.02) by Irwin–Hall: the sum of four 16-bit uniforms from one 64-bit xorshift draw, centred
     * and scaled. Cheap enough that writing the file, not drawing numbers, sets the pace.
     */
    private static void fillNormal(MemorySegment seg, int from, int to, long state) {
        // sum of 4 U(0, 65536) has mean 131070 and variance 4 * 65536^2 / 12.
        final float scale = (float) (0.02 / Math.sqrt(4 * 65536.0 * 65536.0 / 12));
        long x = state | 1;
        for (int i = from; i < to; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            long sum = (x & 0xFFFF) + ((x >>> 16) & 0xFFFF) + ((x >>> 32) & 0xFFFF) + (x >>> 48);
            float v = (sum - 131070L) * scale;
            int bits = Float.floatToRawIntBits(v);
            bits += 0x7FFF + ((bits >>> 16) & 1); // round to nearest even bf16
            seg.setAtIndex(BF16, i, (short) (bits >>> 16));
        }
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static List<Entry> entries(Shape s) {
        long h = s.hidden(), q = (long) s.heads() * s.headDim(), kv = (long) s.kvHeads() * s.headDim();
        List<Entry> list = new ArrayList<>();
        list.add(new Entry("model.embed_tokens.weight", new long[] {s.vocab(), h}, false));
        for (int i = 0; i < s.layers(); i++) {
            String p = "model.layers." + i + ".";
            list.add(new Entry(p + "input_layernorm.weight", new long[] {h}, true));
            list.add(new Entry(p + "self_attn.q_proj.weight", new long[] {q, h}, false));
            list.add(new Entry(p + "self_attn.k_proj.weight", new long[] {kv, h}, false));
            list.add(new Entry(p + "self_attn.v_proj.weight", new long[] {kv, h}, false));
            list.add(new Entry(p + "self_attn.o_proj.weight", new long[] {h, q}, false));
            list.add(new Entry(p + "post_attention_layernorm.weight", new long[] {h}, true));
            list.add(new Entry(p + "mlp.gate_proj.weight", new long[] {s.ffn(), h}, false));
            list.add(new Entry(p + "mlp.up_proj.weight", new long[] {s.ffn(), h}, false));
            list.add(new Entry(p + "mlp.down_proj.weight", new long[] {h, s.ffn()}, false));
        }
        list.add(new Entry("model.norm.weight", new long[] {h}, true));
        return list;
    }

    /** safetensors header: offsets in write order, padded with spaces to 8 bytes as the format recommends. */
    private static byte[] header(List<Entry> entries) throws IOException {
        ObjectMapper json = new ObjectMapper();
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("__metadata__", Map.of("format", "pt"));
        long offset = 0;
        for (Entry e : entries) {
            long end = offset + e.numel() * 2;
            root.put(e.name(), Map.of("dtype", "BF16", "shape", e.shape(), "data_offsets", new long[] {offset, end}));
            offset = end;
        }
        StringBuilder text = new StringBuilder(json.writeValueAsString(root));
        while (text.length() % 8 != 0) {
            text.append(' ');
        }
        return text.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Llama 3.2 1B's config.json with the sizes replaced. */
    private static String config(Shape s) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = json.createObjectNode();
        c.putArray("architectures").add("LlamaForCausalLM");
        c.put("model_type", "llama");
        c.put("hidden_size", s.hidden());
        c.put("intermediate_size", s.ffn());
        c.put("num_hidden_layers", s.layers());
        c.put("num_attention_heads", s.heads());
        c.put("num_key_value_heads", s.kvHeads());
        c.put("head_dim", s.headDim());
        c.put("vocab_size", s.vocab());
        c.put("hidden_act", "silu");
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 500000.0);
        ObjectNode rope = c.putObject("rope_scaling");
        rope.put("rope_type", "llama3");
        rope.put("factor", 32.0);
        rope.put("low_freq_factor", 1.0);
        rope.put("high_freq_factor", 4.0);
        rope.put("original_max_position_embeddings", 8192);
        c.put("max_position_embeddings", 131072);
        c.put("tie_word_embeddings", true);
        c.put("attention_bias", false);
        c.put("mlp_bias", false);
        c.put("torch_dtype", "bfloat16");
        boolean llama3Vocab = s.vocab() > 128001; // smaller vocabularies get ids that fit them
        c.put("bos_token_id", llama3Vocab ? 128000 : 1);
        c.put("eos_token_id", llama3Vocab ? 128001 : 2);
        return json.writerWithDefaultPrettyPrinter().writeValueAsString(c);
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }
}
