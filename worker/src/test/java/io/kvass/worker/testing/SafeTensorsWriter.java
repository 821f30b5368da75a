package io.kvass.worker.testing;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.Tensor;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Writes tensors as a safetensors file, optionally converting fp32 data to f16 (test inputs only). */
public final class SafeTensorsWriter {
    private SafeTensorsWriter() {
    }

    public static void write(Path file, List<Tensor> tensors, DType as) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        long offset = 0;
        for (Tensor t : tensors) {
            long bytes = t.numel() * as.bytes();
            ObjectNode entry = header.putObject(t.name());
            entry.put("dtype", as == DType.F32 ? "F32" : as == DType.F16 ? "F16" : "BF16");
            entry.set("shape", json.valueToTree(t.shape()));
            entry.set("data_offsets", json.valueToTree(new long[] {offset, offset + bytes}));
            offset += bytes;
        }
        byte[] headerBytes = header.toString().getBytes(StandardCharsets.UTF_8);
        try (OutputStream out = Files.newOutputStream(file)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(headerBytes.length).array());
            out.write(headerBytes);
            for (Tensor t : tensors) {
                if (t.dtype() != DType.F32) {
                    throw new IllegalArgumentException("writer converts from F32 only: " + t);
                }
                ByteBuffer buf = ByteBuffer.allocate((int) (t.numel() * as.bytes())).order(ByteOrder.LITTLE_ENDIAN);
                for (long i = 0; i < t.numel(); i++) {
                    float v = t.data().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                    switch (as) {
                        case F32 -> buf.putFloat(v);
                        case F16 -> buf.putShort(Float.floatToFloat16(v));
                        case BF16 -> buf.putShort((short) (Float.floatToRawIntBits(v) >>> 16));
                    }
                }
                out.write(buf.array());
            }
        }
    }
}
