package io.kvass.worker.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** The shared fixtures: {@code -Dkvass.fixtures}, else {@code ../shared/fixtures} beside the repository root. */
final class Fixtures {

    private Fixtures() {}

    static Path root() {
        String property = System.getProperty("kvass.fixtures");
        if (property != null && Files.isDirectory(Path.of(property))) {
            return Path.of(property);
        }
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("../shared/fixtures").normalize();
            if (Files.isDirectory(candidate) && Files.exists(dir.resolve("pom.xml"))) {
                return candidate;
            }
        }
        throw new IllegalStateException("fixtures not found: set -Dkvass.fixtures");
    }

    private static final Map<String, Tokenizer> TOKENIZERS = new ConcurrentHashMap<>();

    /** One shared tokenizer per fixture directory for the whole test run (loading llama3/qwen3 takes ~1 s). */
    static Tokenizer tokenizer(String relative) {
        return TOKENIZERS.computeIfAbsent(relative, r -> Tokenizer.load(path(r)));
    }

    static Path path(String relative) {
        return root().resolve(relative);
    }

    static JsonNode json(String relative) {
        try {
            return new ObjectMapper().readTree(path(relative).toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).intValue();
        }
        return out;
    }
}
