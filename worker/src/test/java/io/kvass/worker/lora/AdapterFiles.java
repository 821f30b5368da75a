package io.kvass.worker.lora;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.ModelConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/** Writes PEFT adapter directories for tests: copies of the fixtures with an edited config, or random adapters. */
public final class AdapterFiles {
    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterFiles() {
    }

    /** Copies adapter {@code src} to {@code dst}, letting {@code edit} change its adapter_config.json. */
    static Path copy(Path src, Path dst, Consumer<ObjectNode> edit) {
        try {
            Files.createDirectories(dst);
            ObjectNode config = (ObjectNode) JSON.readTree(src.resolve(LoraLoader.CONFIG).toFile());
            edit.accept(config);
            JSON.writeValue(dst.resolve(LoraLoader.CONFIG).toFile(), config);
            Files.copy(src.resolve(LoraLoader.WEIGHTS), dst.resolve(LoraLoader.WEIGHTS));
            return dst;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A tensor to write: row-major fp32 values stored as {@code dtype}. */
    record T(long[] shape, float[] values, DType dtype) {
    }

    static ObjectNode config(int rank, double alpha, List<String> targets) {
        ObjectNode c = JSON.createObjectNode();
        c.put("peft_type", "LORA").put("r", rank).put("lora_alpha", alpha).put("bias", "none").put("use_dora", false)
                .put("use_rslora", false).putNull("modules_to_save").putNull("layers_to_transform");
        targets.forEach(c.putArray("target_modules")::add);
        return c;
    }

    static String tensorName(int layer, LoraTarget target, char ab) {
        return "base_model.model." + target.moduleName(layer) + ".lora_" + ab + ".weight";
    }

    /**
     * A random adapter of rank {@code rank} on {@code targets} of the given layers, written in {@code dtype}.
     * Values are small so that it perturbs the model without overwhelming it.
     */
    public static Path random(Path dir, ModelConfig base, int rank, List<LoraTarget> targets, List<Integer> layers, DType dtype,
                       long seed, Consumer<ObjectNode> edit) {
        Random random = new Random(seed);
        Map<String, T> tensors = new LinkedHashMap<>();
        for (int layer : layers) {
            for (LoraTarget t : targets) {
                tensors.put(tensorName(layer, t, 'A'), randomTensor(random, rank, t.inDim(base), dtype));
                tensors.put(tensorName(layer, t, 'B'), randomTensor(random, t.outDim(base), rank, dtype));
            }
        }
        ObjectNode config = config(rank, 2.0 * rank, targets.stream().map(LoraTarget::shortName).toList());
        edit.accept(config);
        return write(dir, config, tensors);
    }

    private static T randomTensor(Random random, int rows, int cols, DType dtype) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.05);
        }
        return new T(new long[] {rows, cols}, v, dtype);
    }

    static Path write(Path dir, ObjectNode config, Map<String, T> tensors) {
        try {
            Files.createDirectories(dir);
            JSON.writeValue(dir.resolve(LoraLoader.CONFIG).toFile(), config);
            writeSafetensors(dir.resolve(LoraLoader.WEIGHTS), tensors);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void writeSafetensors(Path file, Map<String, T> tensors) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        for (var e : tensors.entrySet()) {
            long bytes = (long) e.getValue().values().length * e.getValue().dtype().bytes();
            ObjectNode info = header.putObject(e.getKey());
            info.put("dtype", e.getValue().dtype().name());
            var shape = info.putArray("shape");
            for (long d : e.getValue().shape()) {
                shape.add(d);
            }
            info.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] h = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(8 + h.length + (int) offset).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(h.length).put(h);
        for (T t : tensors.values()) {
            for (float v : t.values()) {
                switch (t.dtype()) {
                    case F32 -> buf.putFloat(v);
                    case BF16 -> buf.putShort((short) (Float.floatToRawIntBits(v) >>> 16)); // truncation is fine for tests
                    case F16 -> buf.putShort(Float.floatToFloat16(v));
                }
            }
        }
        Files.write(file, buf.array());
    }
}
