package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.ModelConfig;
import java.nio.ByteBuffer;
import java.nio.IntBuffer;
import java.util.List;

/**
 * A batch flattened into the integer arrays the kernels read, validated once, in a host buffer laid
 * out exactly like its device copy: sections of {@code capacity} ints (token ids, positions, cache
 * slots, each token's sequence row, the rows that need logits, the tokens left to the paged attention
 * kernel, two for the query tiles of the prefill attention kernel, each token's LoRA slot and three for
 * the LoRA tiles: the adapted tokens sorted by slot, cut into runs of one slot) and then the block tables,
 * {@code maxBlocks} ints per sequence. Sections sit at fixed offsets so that a captured CUDA graph
 * reads every step's inputs from the same addresses.
 *
 * <p>Attention split: a sequence with at least {@link #TILE_MIN_TOKENS} new tokens goes to the prefill
 * kernel in tiles of up to {@link #TILE_TOKENS} consecutive tokens ({@code [first token, count]} pairs);
 * the other tokens (decodes, short chunks) to the paged kernel.
 */
final class StepInputs {
    static final int TOKENS = 0;
    static final int POSITIONS = 1;
    static final int SLOTS = 2;
    static final int TOKEN_SEQUENCE = 3;
    static final int LOGIT_ROWS = 4;
    static final int PAGED_TOKENS = 5;
    static final int TILES = 6;           // two sections: pairs
    static final int ADAPTER_SLOTS = 8;   // each token's LoRA slot, 0 = base model
    static final int LORA_ORDER = 9;      // the adapted tokens, sorted by slot
    static final int LORA_TILE_START = 10; // per LoRA tile: its first index into LORA_ORDER
    static final int LORA_TILE_COUNT = 11; // per LoRA tile: its tokens (0 past the last tile)
    private static final int SECTIONS = 12;
    /** Tokens of one LoRA tile (lora.cu's LORA_TILE): up to this many tokens of one slot share each weight read. */
    static final int LORA_TILE_TOKENS = 8;
    /** A sequence with this many adapted tokens in a step (a prefill chunk) gets its LoRA products from cuBLAS. */
    static final int LORA_GEMM_MIN_TOKENS = 64;
    static final int TILE_TOKENS = 64;
    static final int TILE_MIN_TOKENS = 16;

    final int capacity;
    final int maxBlocks;
    private final IntBuffer host;

    int numTokens;
    int numSequences;
    int numLogitRows;
    int maxContext;
    int numTiles;
    int numPagedTokens;
    /** Tokens of sequences with a LoRA adapter (slot != 0). */
    int numAdaptedTokens;
    int numLoraTiles;
    /** Sequences whose LoRA products run as GEMMs ({@link #LORA_GEMM_MIN_TOKENS}); their tokens are in no tile. */
    final List<LoraRun> loraRuns = new java.util.ArrayList<>();

    /** A sequence's adapted tokens {@code [firstToken, firstToken + count)} of one slot. */
    record LoraRun(int firstToken, int count, int slot) {
    }
    /** Rows the forward pass covers: {@code numTokens}, or more after {@link #padTo}. */
    int paddedTokens;

    StepInputs(int capacity, int maxBlocks, ByteBuffer host) {
        if (host.capacity() < bytes(capacity, maxBlocks)) {
            throw new IllegalArgumentException("host buffer of " + host.capacity() + " bytes, need " + bytes(capacity, maxBlocks));
        }
        this.capacity = capacity;
        this.maxBlocks = maxBlocks;
        this.host = host.asIntBuffer();
    }

    /** Host (and device) bytes for {@code capacity} tokens; one spare table row serves padding tokens. */
    static long bytes(int capacity, int maxBlocks) {
        return 4L * (SECTIONS * (long) capacity + (capacity + 1L) * maxBlocks);
    }

    /** Byte offset of a section in the buffer. */
    long sectionOffset(int section) {
        return 4L * section * capacity;
    }

    long tablesOffset() {
        return 4L * SECTIONS * capacity;
    }

    /** Bytes to upload for the current batch: the sections and the used table rows. */
    long uploadBytes() {
        return tablesOffset() + 4L * (numSequences + (paddedTokens > numTokens ? 1 : 0)) * maxBlocks;
    }

    int get(int section, int index) {
        return host.get(section * capacity + index);
    }

    int table(int sequence, int index) {
        return host.get(SECTIONS * capacity + sequence * maxBlocks + index);
    }

    /** Validates and writes {@code batch}; throws {@link IllegalArgumentException} naming the bad sequence. */
    void fill(List<SequenceForward> batch, ModelConfig config, int blockSize, int numBlocks, int maxModelLen, boolean tiles) {
        if (batch.isEmpty()) {
            throw new IllegalArgumentException("empty forward batch");
        }
        int t = 0, rows = 0, maxCtx = 0, tileCount = 0, paged = 0, adapted = 0;
        for (int s = 0; s < batch.size(); s++) {
            SequenceForward seq = batch.get(s);
            int end = seq.endPosition();
            if (end > maxModelLen) {
                throw new IllegalArgumentException("sequence " + s + " reaches position " + end + ", beyond max_model_len "
                        + maxModelLen);
            }
            int needed = (end + blockSize - 1) / blockSize;
            if (seq.blockTable().length < needed) {
                throw new IllegalArgumentException("sequence " + s + "'s block table covers " + seq.blockTable().length * blockSize
                        + " positions, needs " + end);
            }
            if (t + seq.numTokens() > capacity) {
                throw new IllegalArgumentException("batch of more than " + capacity + " tokens (split it first)");
            }
            int tableBase = SECTIONS * capacity + s * maxBlocks;
            for (int b = 0; b < needed; b++) {
                int block = seq.blockTable()[b];
                if (block < 0 || block >= numBlocks) {
                    throw new IllegalArgumentException("sequence " + s + ": block id " + block + " outside the pool of " + numBlocks);
                }
                host.put(tableBase + b, block);
            }
            int first = t;
            for (int i = 0; i < seq.numTokens(); i++, t++) {
                int id = seq.tokenIds()[i];
                if (id < 0 || id >= config.vocabSize()) {
                    throw new IllegalArgumentException("sequence " + s + ": token id " + id + " outside the vocabulary of "
                            + config.vocabSize());
                }
                int pos = seq.startPosition() + i;
                put(TOKENS, t, id);
                put(POSITIONS, t, pos);
                put(SLOTS, t, seq.blockTable()[pos / blockSize] * blockSize + pos % blockSize);
                put(TOKEN_SEQUENCE, t, s);
                put(ADAPTER_SLOTS, t, seq.adapterSlot());
            }
            if (seq.adapterSlot() != 0) {
                adapted += seq.numTokens();
            }
            if (tiles && seq.numTokens() >= TILE_MIN_TOKENS) {
                for (int i = first; i < t; i += TILE_TOKENS) {
                    put(TILES, 2 * tileCount, i);
                    put(TILES, 2 * tileCount + 1, Math.min(TILE_TOKENS, t - i));
                    tileCount++;
                }
            } else {
                for (int i = first; i < t; i++) {
                    put(PAGED_TOKENS, paged++, i);
                }
            }
            if (seq.logits() == LogitsMode.ALL) {
                for (int i = first; i < t; i++) {
                    put(LOGIT_ROWS, rows++, i);
                }
            } else if (seq.logits() == LogitsMode.LAST) {
                put(LOGIT_ROWS, rows++, t - 1);
            }
            maxCtx = Math.max(maxCtx, end);
        }
        numTokens = t;
        paddedTokens = t;
        numSequences = batch.size();
        numLogitRows = rows;
        maxContext = maxCtx;
        numTiles = tileCount;
        numPagedTokens = paged;
        numAdaptedTokens = adapted;
        loraRuns.clear();
        numLoraTiles = adapted == 0 ? 0 : loraTiles(batch);
    }

    /**
     * Sorts the adapted tokens by slot (a sequence's tokens stay together, in order) and cuts them into
     * tiles of up to {@link #LORA_TILE_TOKENS} tokens of one slot; tile counts past the last tile are 0.
     * Sequences of {@link #LORA_GEMM_MIN_TOKENS} tokens or more become {@link #loraRuns} instead.
     */
    private int loraTiles(List<SequenceForward> batch) {
        long[] bySlot = new long[batch.size()];
        int sequences = 0;
        int[] firstToken = new int[batch.size()];
        for (int s = 0; s < batch.size(); s++) {
            SequenceForward seq = batch.get(s);
            if (s > 0) {
                firstToken[s] = firstToken[s - 1] + batch.get(s - 1).numTokens();
            }
            if (seq.adapterSlot() != 0 && seq.numTokens() >= LORA_GEMM_MIN_TOKENS) {
                loraRuns.add(new LoraRun(firstToken[s], seq.numTokens(), seq.adapterSlot()));
            } else if (seq.adapterSlot() != 0) {
                bySlot[sequences++] = ((long) seq.adapterSlot() << 32) | s;
            }
        }
        java.util.Arrays.sort(bySlot, 0, sequences);
        int at = 0, tiles = 0, tileSlot = -1, tileSize = 0;
        for (int i = 0; i < sequences; i++) {
            int s = (int) bySlot[i], slot = (int) (bySlot[i] >>> 32);
            for (int k = 0; k < batch.get(s).numTokens(); k++, at++) {
                if (slot != tileSlot || tileSize == LORA_TILE_TOKENS) {
                    put(LORA_TILE_START, tiles++, at);
                    tileSlot = slot;
                    tileSize = 0;
                }
                put(LORA_ORDER, at, firstToken[s] + k);
                put(LORA_TILE_COUNT, tiles - 1, ++tileSize);
            }
        }
        for (int i = tiles; i < numTokens; i++) {
            put(LORA_TILE_COUNT, i, 0);
        }
        return tiles;
    }

    /**
     * Pads to {@code tokens} rows for a captured graph: padding tokens are id 0 at position 0, write no
     * K/V (slot -1) and read block 0 through the spare table row; their outputs are never returned.
     */
    void padTo(int tokens) {
        if (tokens > capacity || tokens < numTokens) {
            throw new IllegalArgumentException("cannot pad " + numTokens + " tokens to " + tokens);
        }
        for (int t = numTokens; t < tokens; t++) {
            put(TOKENS, t, 0);
            put(POSITIONS, t, 0);
            put(SLOTS, t, -1);
            put(TOKEN_SEQUENCE, t, numSequences);
            put(LOGIT_ROWS, t, t);
            put(ADAPTER_SLOTS, t, 0);
            put(LORA_TILE_COUNT, t, 0);
        }
        if (tokens > numTokens) {
            host.put(SECTIONS * capacity + numSequences * maxBlocks, 0);
        }
        paddedTokens = tokens;
    }

    /** True when every sequence decodes one token and wants its logits: a step a CUDA graph can run. */
    static boolean isDecode(List<SequenceForward> batch) {
        for (SequenceForward s : batch) {
            if (s.numTokens() != 1 || s.logits() != LogitsMode.LAST) {
                return false;
            }
        }
        return true;
    }

    private void put(int section, int index, int value) {
        host.put(section * capacity + index, value);
    }
}
