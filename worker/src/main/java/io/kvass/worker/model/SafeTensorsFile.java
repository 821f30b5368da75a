package io.kvass.worker.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One {@code .safetensors} file, memory-mapped: tensors are views into the mapping, never heap copies.
 * Format: u64 little-endian header length, a JSON header, then the raw tensor bytes.
 */
public final class SafeTensorsFile {
    private static final long MAX_HEADER = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final Map<String, Tensor> tensors;

    private SafeTensorsFile(Path path, Map<String, Tensor> tensors) {
        this.path = path;
        this.tensors = tensors;
    }

    /** Maps {@code path} into {@code arena}; the tensors stay valid until the arena closes. */
    public static SafeTensorsFile open(Path path, Arena arena) {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw corrupt(path, "file is " + size + " bytes, shorter than the 8-byte header length");
            }
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLen = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size) {
                throw corrupt(path, "header length " + headerLen + " does not fit a file of " + size + " bytes");
            }
            byte[] header = file.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = file.asSlice(8 + headerLen);
            return new SafeTensorsFile(path, parseHeader(path, new String(header, StandardCharsets.UTF_8), data));
        } catch (IOException e) {
            throw new ModelLoadException("cannot read " + path + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, Tensor> parseHeader(Path path, String header, MemorySegment data) {
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (IOException e) {
            throw corrupt(path, "header is not valid JSON (" + e.getMessage() + ")");
        }
        if (root == null || !root.isObject()) {
            throw corrupt(path, "header is not a JSON object");
        }
        Map<String, Tensor> tensors = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> entry = it.next();
            String name = entry.getKey();
            if (name.equals("__metadata__")) {
                continue;
            }
            JsonNode info = entry.getValue();
            JsonNode offsets = info.path("data_offsets");
            JsonNode shapeNode = info.path("shape");
            if (!info.path("dtype").isTextual() || offsets.size() != 2 || !shapeNode.isArray()) {
                throw corrupt(path, "entry for '" + name + "' lacks dtype, shape or data_offsets");
            }
            DType dtype = DType.ofSafetensors(info.get("dtype").asText(), name);
            long[] shape = new long[shapeNode.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                shape[i] = shapeNode.get(i).asLong();
                numel *= shape[i];
            }
            long begin = offsets.get(0).asLong();
            long end = offsets.get(1).asLong();
            if (begin < 0 || end < begin || end > data.byteSize() || end - begin != numel * dtype.bytes()) {
                throw corrupt(path, "tensor '" + name + "' has data_offsets [" + begin + ", " + end
                        + "] inconsistent with its shape or the file size");
            }
            tensors.put(name, new Tensor(name, dtype, shape, data.asSlice(begin, end - begin)));
        }
        return tensors;
    }

    private static ModelLoadException corrupt(Path path, String why) {
        return new ModelLoadException("corrupt safetensors file " + path + ": " + why);
    }

    public Path path() {
        return path;
    }

    public Set<String> names() {
        return tensors.keySet();
    }

    public Optional<Tensor> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }
}
