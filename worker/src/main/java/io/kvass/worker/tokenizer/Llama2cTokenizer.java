package io.kvass.worker.tokenizer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * llama2.c's tokenizer ({@code tok512.bin}, {@code tokenizer.bin}): SentencePiece-style BPE that merges the
 * best-scoring adjacent pair first, with a dummy prefix space and byte fallback, as in llama2.c's
 * {@code run.c}. Ids 0, 1, 2 are {@code <unk>}, BOS, EOS; ids 3..258 are the bytes {@code <0x00>..<0xFF>}.
 *
 * <p>Decoding follows Hugging Face's decoder for the same vocabulary (skipped special tokens are removed
 * first; a run of byte tokens that is not valid UTF-8 becomes one U+FFFD per byte; the leading space of the
 * text is dropped) and, where BOS is shown, run.c's rule that the space right after BOS is dropped too.
 */
public final class Llama2cTokenizer implements Tokenizer {

    static final int BOS = 1;
    static final int EOS = 2;
    private static final int FIRST_BYTE = 3;
    private static final int FIRST_PIECE = FIRST_BYTE + 256;
    private static final String[] SPECIAL_TEXT = {"<unk>", "<s>", "</s>"};

    private final String[] pieces; // raw piece bytes as ISO-8859-1, so one char is one byte
    private final float[] scores;
    private final Map<String, Integer> ids;
    private final Set<Integer> eos;
    private final int dummyPrefix;

    private Llama2cTokenizer(Path file, String[] pieces, float[] scores, Set<Integer> eos) {
        this.pieces = pieces;
        this.scores = scores;
        this.eos = eos;
        this.ids = new HashMap<>();
        for (int i = FIRST_BYTE; i < pieces.length; i++) {
            ids.putIfAbsent(pieces[i], i);
        }
        Integer space = ids.get(" ");
        if (space == null) {
            throw new IllegalArgumentException("not a llama2.c tokenizer " + file + ": no \" \" piece");
        }
        this.dummyPrefix = space;
    }

    /**
     * Reads a llama2.c tokenizer file: int32 max_token_length, then per token float32 score, int32 length and
     * the piece's bytes, little-endian. The vocabulary size is however many tokens the file holds.
     */
    public static Llama2cTokenizer load(Path file) {
        ByteBuffer buf;
        try {
            buf = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read llama2.c tokenizer " + file, e);
        }
        List<String> pieces = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        try {
            int maxLen = buf.getInt();
            while (buf.hasRemaining()) {
                float score = buf.getFloat();
                int len = buf.getInt();
                if (len < 0 || len > maxLen) {
                    throw new IllegalArgumentException("corrupt llama2.c tokenizer " + file + ": token " + pieces.size()
                            + " has length " + len + " (max_token_length " + maxLen + ")");
                }
                byte[] piece = new byte[len];
                buf.get(piece);
                pieces.add(new String(piece, StandardCharsets.ISO_8859_1));
                scores.add(score);
            }
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException(
                    "corrupt llama2.c tokenizer " + file + ": truncated in token " + pieces.size(), e);
        }
        if (pieces.size() < FIRST_PIECE || !pieces.get(FIRST_BYTE).equals("<0x00>")
                || !pieces.get(FIRST_PIECE - 1).equals("<0xFF>")) {
            throw new IllegalArgumentException("not a llama2.c tokenizer " + file + ": expected <unk>, <s>, </s> and "
                    + "the 256 byte tokens <0x00>..<0xFF> first, found " + pieces.size() + " tokens");
        }
        float[] s = new float[scores.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
        }
        Set<Integer> eos = new LinkedHashSet<>();
        eos.add(EOS);
        eos.addAll(TokenizerConfig.read(file.getParent()).eosTokenIds());
        return new Llama2cTokenizer(file, pieces.toArray(String[]::new), s, Set.copyOf(eos));
    }

    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
        List<Integer> tokens = new ArrayList<>();
        if (!text.isEmpty()) {
            tokens.add(dummyPrefix); // SentencePiece's dummy prefix
            String bytes = new String(text.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
            for (int i = 0; i < bytes.length(); ) {
                int end = i + 1; // one UTF-8 character: a lead byte and its continuation bytes
                while (end < bytes.length() && end - i < 4 && (bytes.charAt(end) & 0xC0) == 0x80) {
                    end++;
                }
                Integer id = ids.get(bytes.substring(i, end));
                if (id != null) {
                    tokens.add(id);
                } else {
                    for (int b = i; b < end; b++) {
                        tokens.add(FIRST_BYTE + bytes.charAt(b));
                    }
                }
                i = end;
            }
            mergeBestPairs(tokens);
        }
        if (addSpecialTokens) {
            tokens.addFirst(BOS);
        }
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    /** run.c: repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties). */
    private void mergeBestPairs(List<Integer> tokens) {
        while (true) {
            float best = Float.NEGATIVE_INFINITY;
            int bestId = -1;
            int bestIdx = -1;
            for (int i = 0; i + 1 < tokens.size(); i++) {
                Integer id = ids.get(pieces[tokens.get(i)] + pieces[tokens.get(i + 1)]);
                if (id != null && scores[id] > best) {
                    best = scores[id];
                    bestId = id;
                    bestIdx = i;
                }
            }
            if (bestIdx < 0) {
                return;
            }
            tokens.set(bestIdx, bestId);
            tokens.remove(bestIdx + 1);
        }
    }

    @Override
    public String decode(int[] tokenIds, boolean skipSpecialTokens) {
        StringBuilder out = new StringBuilder();
        ByteArrayOutputStream byteRun = new ByteArrayOutputStream();
        boolean stripSpace = true; // at the start, and after BOS
        for (int i = 0; i < tokenIds.length; i++) {
            int id = tokenIds[i];
            if (id < 0) {
                throw new IllegalArgumentException("negative token id " + id + " at position " + i);
            }
            if (id >= pieces.length || (id < FIRST_BYTE && skipSpecialTokens)) {
                continue; // removed before decoding, as in HF: a byte run goes on across them
            }
            if (id >= FIRST_BYTE && id < FIRST_PIECE) {
                byteRun.write(id - FIRST_BYTE);
                continue;
            }
            stripSpace = append(out, flushBytes(byteRun), stripSpace);
            if (id < FIRST_BYTE) {
                out.append(SPECIAL_TEXT[id]);
                stripSpace = id == BOS;
            } else {
                stripSpace = append(out, utf8(pieces[id]), stripSpace);
            }
        }
        append(out, flushBytes(byteRun), stripSpace);
        return out.toString();
    }

    private static boolean append(StringBuilder out, String text, boolean stripSpace) {
        if (text.isEmpty()) {
            return stripSpace;
        }
        out.append(stripSpace && text.charAt(0) == ' ' ? text.substring(1) : text);
        return false;
    }

    /** Hugging Face's ByteFallback decoder: a run of byte tokens is its UTF-8 text, or one U+FFFD per byte if invalid. */
    private static String flushBytes(ByteArrayOutputStream run) {
        if (run.size() == 0) {
            return "";
        }
        byte[] bytes = run.toByteArray();
        run.reset();
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return "\uFFFD".repeat(bytes.length);
        }
    }

    private static String utf8(String latin1) {
        return new String(latin1.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    @Override
    public OptionalInt bosTokenId() {
        return OptionalInt.of(BOS);
    }

    @Override
    public Set<Integer> eosTokenIds() {
        return eos;
    }

    @Override
    public boolean isSpecial(int id) {
        return id >= 0 && id < FIRST_BYTE;
    }

    /** The piece as SentencePiece spells it ({@code "▁Once"}, {@code "<0x0A>"}, {@code "<s>"}), like tokenizer.json. */
    @Override
    public String tokenText(int id) {
        if (id < 0 || id >= pieces.length) {
            throw new IndexOutOfBoundsException("token id " + id + " outside vocabulary of " + pieces.length);
        }
        return id < FIRST_BYTE ? SPECIAL_TEXT[id] : utf8(pieces[id]).replace(' ', '\u2581');
    }
}
