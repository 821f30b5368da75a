package io.kvass.worker.tokenizer;

import java.util.Arrays;

/**
 * Turns a stream of generated token ids into text as soon as it is complete, like vLLM's
 * {@code detokenize_incrementally}: each step decodes a short window of already-emitted tokens (the prefix)
 * with and without the new tokens and emits the difference. Because both decodes start at the same token,
 * decoder rules that look at the start of the text (SentencePiece's leading-space strip) affect both alike,
 * and the emitted pieces add up to {@code decode(allIds, skipSpecialTokens)}.
 *
 * <p>Text ending in U+FFFD is held back: it is a UTF-8 character whose remaining byte tokens have not
 * arrived. So is a run of SentencePiece byte-fallback tokens ({@code <0xE6>}) until a token of another kind
 * follows, because a later byte can still change how the whole run decodes. {@link #flush()} releases
 * whatever is still held when generation ends. Not thread-safe; one instance per sequence.
 */
public final class IncrementalDetokenizer {

    /** vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET: how many prompt tokens serve as the first prefix. */
    private static final int PROMPT_CONTEXT = 5;

    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] ids;
    private int size;
    private int prefixOffset; // the window to decode starts here
    private int readOffset; // text of tokens before this has been emitted

    /** A detokenizer for output that starts the text (its first leading space is stripped like full decode). */
    public IncrementalDetokenizer(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this(tokenizer, new int[0], skipSpecialTokens);
    }

    /**
     * A detokenizer for output that continues {@code promptIds}: the prompt's last tokens are the first prefix,
     * so the first generated token reads as it would in the full text (e.g. keeps its leading space).
     */
    public IncrementalDetokenizer(Tokenizer tokenizer, int[] promptIds, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
        this.ids = Arrays.copyOf(promptIds, Math.max(16, promptIds.length * 2));
        this.size = promptIds.length;
        this.prefixOffset = Math.max(0, size - PROMPT_CONTEXT);
        this.readOffset = size;
    }

    /** Adds one generated token; returns the text it completes (often empty while a character is incomplete). */
    public String next(int tokenId) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, size * 2);
        }
        ids[size++] = tokenId;
        // A run of byte-fallback tokens decodes as a whole (invalid UTF-8 anywhere turns all of it into
        // U+FFFD), so its text is final only once a token of another kind follows; skipped special tokens
        // add no text and do not end a run.
        if ((skipSpecialTokens && tokenizer.isSpecial(tokenId)) || isByteToken(tokenId)) {
            return "";
        }
        return emit(false);
    }

    private boolean isByteToken(int id) {
        if (id >= tokenizer.vocabSize()) {
            return false;
        }
        String piece = tokenizer.tokenText(id);
        return piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">");
    }

    /** Returns any text still held back (e.g. an incomplete UTF-8 character at the end, as U+FFFD). */
    public String flush() {
        return emit(true);
    }

    private String emit(boolean force) {
        if (readOffset == size) {
            return "";
        }
        String prefix = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), skipSpecialTokens);
        String text = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, size), skipSpecialTokens);
        // Shorter or equal text: the new tokens added nothing yet (skipped specials, or bytes that replace a
        // held U+FFFD). Keep the window so the next decode starts at the same token.
        if (text.length() <= prefix.length() || (!force && text.endsWith("\uFFFD"))) {
            return "";
        }
        prefixOffset = readOffset;
        readOffset = size;
        return text.substring(prefix.length());
    }
}
