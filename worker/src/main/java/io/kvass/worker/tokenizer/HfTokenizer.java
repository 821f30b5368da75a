package io.kvass.worker.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * A Hugging Face {@code tokenizer.json}, run by the Rust {@code tokenizers} library through DJL. The
 * vocabulary and special-token flags are read from the JSON directly, since DJL does not expose them.
 */
public final class HfTokenizer implements Tokenizer {

    private final HuggingFaceTokenizer hf;
    private final String[] pieces;
    private final BitSet special;
    private final OptionalInt bos;
    private final Set<Integer> eos;

    private HfTokenizer(HuggingFaceTokenizer hf, String[] pieces, BitSet special, OptionalInt bos, Set<Integer> eos) {
        this.hf = hf;
        this.pieces = pieces;
        this.special = special;
        this.bos = bos;
        this.eos = eos;
    }

    /** Loads {@code tokenizer.json} plus the special-token settings of {@code modelDir}. */
    public static HfTokenizer load(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        String text = TokenizerConfig.readString(file);
        JsonNode json = TokenizerConfig.parseJson(file, text);
        Map<Integer, String> byId = new HashMap<>();
        Map<String, Integer> added = new HashMap<>();
        BitSet special = new BitSet();
        JsonNode vocab = json.path("model").path("vocab");
        if (vocab.isObject()) { // BPE, WordPiece, WordLevel: {"piece": id}
            vocab.properties().forEach(e -> byId.put(e.getValue().intValue(), e.getKey()));
        } else if (vocab.isArray()) { // Unigram: [[piece, score], ...], id = position
            for (int i = 0; i < vocab.size(); i++) {
                byId.put(i, vocab.get(i).path(0).asText());
            }
        } else {
            throw new IllegalArgumentException("invalid tokenizer " + file + ": no model.vocab");
        }
        for (JsonNode t : json.path("added_tokens")) {
            int id = t.path("id").intValue();
            byId.put(id, t.path("content").asText());
            added.put(t.path("content").asText(), id);
            if (t.path("special").asBoolean(false)) {
                special.set(id);
            }
        }
        String[] pieces = new String[byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1];
        Arrays.fill(pieces, "");
        byId.forEach((id, piece) -> pieces[id] = piece);

        TokenizerConfig config = TokenizerConfig.read(modelDir);
        OptionalInt bos = config.bosToken().map(s -> idOf(s, added, pieces)).orElse(OptionalInt.empty());
        Set<Integer> eos = new LinkedHashSet<>();
        config.eosToken().map(s -> idOf(s, added, pieces)).orElse(OptionalInt.empty()).ifPresent(eos::add);
        eos.addAll(config.eosTokenIds());

        HuggingFaceTokenizer hf;
        try {
            // DJL truncates to 512 tokens and pads by default; a server must see the text as it is.
            hf = HuggingFaceTokenizer.newInstance(
                    new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8)),
                    Map.of("truncation", "false", "padding", "false", "addSpecialTokens", "false"));
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("invalid tokenizer " + file + ": " + e.getMessage(), e);
        }
        return new HfTokenizer(hf, pieces, special, bos, Set.copyOf(eos));
    }

    private static OptionalInt idOf(String token, Map<String, Integer> added, String[] pieces) {
        Integer id = added.get(token);
        if (id != null) {
            return OptionalInt.of(id);
        }
        for (int i = 0; i < pieces.length; i++) {
            if (pieces[i].equals(token)) {
                return OptionalInt.of(i);
            }
        }
        return OptionalInt.empty();
    }

    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
        long[] ids = hf.encode(text, addSpecialTokens, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = (int) ids[i];
        }
        return out;
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] longs = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0) {
                throw new IllegalArgumentException("negative token id " + ids[i] + " at position " + i);
            }
            longs[i] = ids[i];
        }
        return ids.length == 0 ? "" : hf.decode(longs, skipSpecialTokens);
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    @Override
    public OptionalInt bosTokenId() {
        return bos;
    }

    @Override
    public Set<Integer> eosTokenIds() {
        return eos;
    }

    @Override
    public boolean isSpecial(int id) {
        return id >= 0 && special.get(id);
    }

    @Override
    public String tokenText(int id) {
        if (id < 0 || id >= pieces.length) {
            throw new IndexOutOfBoundsException("token id " + id + " outside vocabulary of " + pieces.length);
        }
        return pieces[id];
    }

    @Override
    public void close() {
        hf.close();
    }
}
