package io.kvass.worker.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad model directories fail with a message that names the problem. */
class LoadedModelErrorsTest {
    @TempDir
    Path tmp;

    private static String loadError(Path dir) {
        return assertThrows(ModelLoadException.class, () -> LoadedModel.load(dir).close()).getMessage();
    }

    /** A copy of a fixture model whose files the test may then damage. */
    private Path copyOf(Path fixture) throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("model"));
        try (var files = Files.list(fixture)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                Files.copy(f, dir.resolve(f.getFileName()), StandardCopyOption.COPY_ATTRIBUTES);
            }
        }
        return dir;
    }

    @Test
    void missingDirectory() {
        String message = loadError(tmp.resolve("nope"));
        assertTrue(message.contains("nope") && message.contains("does not exist"), message);
    }

    @Test
    void emptyDirectory() {
        String message = loadError(tmp);
        assertTrue(message.contains("neither a Hugging Face model"), message);
    }

    @Test
    void unknownArchitecture() throws IOException {
        Path dir = copyOf(Fixtures.stories260K());
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("LlamaForCausalLM", "GPT2LMHeadModel"));
        String message = loadError(dir);
        assertTrue(message.contains("unsupported architecture 'GPT2LMHeadModel'"), message);
        assertTrue(message.contains("LlamaForCausalLM"), message);
    }

    @Test
    void corruptSafetensorsHeader() throws IOException {
        Path dir = copyOf(Fixtures.stories260K());
        byte[] bytes = Files.readAllBytes(dir.resolve("model.safetensors"));
        bytes[8] = '#'; // the header's opening brace
        Files.write(dir.resolve("model.safetensors"), bytes);
        String message = loadError(dir);
        assertTrue(message.contains("corrupt safetensors file") && message.contains("not valid JSON"), message);
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        Path dir = copyOf(Fixtures.stories260K());
        Files.write(dir.resolve("model.safetensors"),
                ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        String message = loadError(dir);
        assertTrue(message.contains("header length"), message);
    }

    @Test
    void missingTensor() throws IOException {
        Path dir = copyOf(Fixtures.stories260K());
        rewriteHeader(dir.resolve("model.safetensors"), "model.norm.weight", "model.nrom.weight");
        String message = loadError(dir);
        assertTrue(message.contains("missing tensor 'model.norm.weight'"), message);
    }

    @Test
    void wrongShape() throws IOException {
        Path dir = copyOf(Fixtures.stories260K());
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"intermediate_size\": 172", "\"intermediate_size\": 171"));
        String message = loadError(dir);
        assertTrue(message.contains("model.layers.0.mlp.gate_proj.weight") && message.contains("[172, 64]"), message);
    }

    @Test
    void truncatedLlama2cCheckpoint() throws IOException {
        Path dir = copyOf(Fixtures.stories260KLlama2c());
        Path bin = dir.resolve("stories260K.bin");
        byte[] bytes = Files.readAllBytes(bin);
        Files.write(bin, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        String message = loadError(dir);
        assertTrue(message.contains("truncated"), message);
    }

    @Test
    void bothConfigStylesAndDtypesLoad() {
        try (LoadedModel llama = LoadedModel.load(Fixtures.reference("llama-gqa"));
             LoadedModel qwen = LoadedModel.load(Fixtures.reference("qwen2-bias"))) {
            assertEquals(DType.BF16, llama.tensors().embedding().dtype());
            assertEquals(Architecture.QWEN2, qwen.config().architecture());
            assertEquals(1_000_000.0, qwen.config().rope().theta());
            assertTrue(qwen.config().qkvBias() && qwen.config().tiedEmbeddings());
            assertEquals(2, llama.config().numKvHeads());
        }
    }

    /** Renames a tensor in place (same byte length, so offsets stay valid). */
    private static void rewriteHeader(Path file, String from, String to) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        int headerLen = (int) ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        String header = new String(bytes, 8, headerLen, StandardCharsets.UTF_8).replace(from, to);
        System.arraycopy(header.getBytes(StandardCharsets.UTF_8), 0, bytes, 8, headerLen);
        Files.write(file, bytes);
    }
}
