package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad model directories fail with a message that names the problem and the path. */
class BadInputTest {

    private static void assertMessage(RuntimeException e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "'" + part + "' missing from: " + e.getMessage());
        }
    }

    @Test
    void missingDirectory(@TempDir Path tmp) {
        Path missing = tmp.resolve("no-such-model");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(missing)),
                "does not exist", missing.toString());
        assertMessage(assertThrows(IllegalArgumentException.class, () -> ChatTemplate.load(missing)),
                "does not exist", missing.toString());
    }

    @Test
    void directoryWithoutTokenizer(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("config.json"), "{}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "no tokenizer", tmp.toString(), "tokenizer.json");
    }

    @Test
    void corruptTokenizerJson(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"model\": {");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "corrupt JSON", tmp.resolve("tokenizer.json").toString());
    }

    @Test
    void jsonThatIsNoTokenizer(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "invalid tokenizer", tmp.resolve("tokenizer.json").toString());
    }

    @Test
    void corruptConfigNextToAGoodTokenizer(@TempDir Path tmp) throws IOException {
        Files.copy(Fixtures.path("models/stories260K/tokenizer.json"), tmp.resolve("tokenizer.json"));
        Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"eos_token\": ");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "corrupt JSON", tmp.resolve("tokenizer_config.json").toString());
        assertMessage(assertThrows(IllegalArgumentException.class, () -> ChatTemplate.load(tmp)),
                "corrupt JSON", tmp.resolve("tokenizer_config.json").toString());
    }

    @Test
    void truncatedLlama2cTokenizer(@TempDir Path tmp) throws IOException {
        byte[] good = Files.readAllBytes(Fixtures.path("models/stories260K-llama2c/tok512.bin"));
        Path file = tmp.resolve("tok512.bin");
        Files.write(file, Arrays.copyOf(good, good.length - 3));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "corrupt llama2.c tokenizer", file.toString(), "truncated");
    }

    @Test
    void llama2cTokenizerWithBadLength(@TempDir Path tmp) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(8).putFloat(0f).putInt(1000);
        Path file = tmp.resolve("tokenizer.bin");
        Files.write(file, b.array());
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "corrupt llama2.c tokenizer", file.toString(), "length 1000");
    }

    @Test
    void ambiguousLlama2cTokenizers(@TempDir Path tmp) throws IOException {
        Files.copy(Fixtures.path("models/stories260K-llama2c/tok512.bin"), tmp.resolve("tok512.bin"));
        Files.copy(Fixtures.path("models/stories260K-llama2c/tok512.bin"), tmp.resolve("tok4096.bin"));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(tmp)),
                "ambiguous", "tok512.bin", "tok4096.bin");
    }

    @Test
    void brokenChatTemplate() {
        assertMessage(assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.of("{% for m in messages %}{{ m.content }", java.util.Map.of())), "unterminated");
        // Syntax errors show at load, not at the first request.
        assertMessage(assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.of("{% for m in messages %}{{ m.content }}", java.util.Map.of())), "endfor");
    }
}
