package io.kvass.worker.tokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Text to token ids and back, for one model. Implementations are thread-safe.
 *
 * <p>Ids at or above {@link #vocabSize()} (models often pad their embedding past the tokenizer's
 * vocabulary) decode to nothing, as in Hugging Face; negative ids are rejected.
 */
public interface Tokenizer extends AutoCloseable {

    /** Encodes {@code text}; {@code addSpecialTokens} adds BOS (etc.) exactly where the model's tokenizer does. */
    int[] encode(String text, boolean addSpecialTokens);

    /** Decodes ids to text; invalid UTF-8 from byte tokens becomes U+FFFD. */
    String decode(int[] ids, boolean skipSpecialTokens);

    /** Number of ids the tokenizer knows, added tokens included (may be below the model's vocab size). */
    int vocabSize();

    OptionalInt bosTokenId();

    /** Every id that ends generation: tokenizer_config.json, generation_config.json and config.json together. */
    Set<Integer> eosTokenIds();

    boolean isSpecial(int id);

    /** The raw vocabulary piece of {@code id} (e.g. {@code "▁Once"}, {@code "<0x0A>"}), for debugging and logprobs. */
    String tokenText(int id);

    @Override
    default void close() {}

    /**
     * Loads the tokenizer of a model directory: {@code tokenizer.json} (Hugging Face) if present, else a
     * llama2.c {@code tokenizer.bin} or {@code tok*.bin}.
     *
     * @throws IllegalArgumentException if the directory is missing, has no tokenizer, or the tokenizer is corrupt
     * @throws UncheckedIOException if reading fails
     */
    static Tokenizer load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new IllegalArgumentException("model directory does not exist or is not a directory: " + modelDir);
        }
        Path hf = modelDir.resolve("tokenizer.json");
        if (Files.isRegularFile(hf)) {
            return HfTokenizer.load(modelDir);
        }
        Path bin = modelDir.resolve("tokenizer.bin");
        if (Files.isRegularFile(bin)) {
            return Llama2cTokenizer.load(bin);
        }
        List<Path> candidates;
        try (Stream<Path> files = Files.list(modelDir)) {
            candidates = files.filter(p -> p.getFileName().toString().matches("tok.*\\.bin") && Files.isRegularFile(p))
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list model directory " + modelDir, e);
        }
        if (candidates.size() == 1) {
            return Llama2cTokenizer.load(candidates.getFirst());
        }
        if (candidates.size() > 1) {
            throw new IllegalArgumentException("ambiguous llama2.c tokenizers in " + modelDir + ": " + candidates);
        }
        throw new IllegalArgumentException(
                "no tokenizer in " + modelDir + ": expected tokenizer.json, tokenizer.bin or tok*.bin");
    }
}
