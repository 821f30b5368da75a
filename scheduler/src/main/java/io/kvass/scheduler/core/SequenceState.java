package io.kvass.scheduler.core;

import io.kvass.kvpaging.KvCacheManager;
import io.kvass.kvpaging.RequestKey;
import io.kvass.worker.step.ContinuingSequence;
import io.kvass.worker.sampling.SamplingParams;
import java.util.Arrays;

/**
 * One sequence (one of a request's n completions) as the scheduler tracks it.
 * NOTE: {@code numComputed <= numTokens}; tokens {@code [numComputed, numTokens)} await compute.
 */
public final class SequenceState {
    private static final int[] NO_BLOCKS = new int[0];
    private static final int[] NO_TOKENS = new int[0];
    // NOTE: a sequence whose longest length is at most this many tokens past its prompt gets a token array of
    // that length at once (16 KB at most), so it never copies its tokens as it grows; a longer one grows by
    // doubling rather than reserve memory it may never use.
    private static final int RESERVED_OUTPUT_TOKENS = 4096;

    private final Request request;
    private final int index;
    private final String seqId;
    private final SamplingParams params;
    private final long seed;
    private final RequestKey key;
    // NOTE: its stop rules as plain numbers, so the check after each token reads nothing but this object
    // and the token: reading them from the params and the request's prompt was three or four more cache
    // misses per sequence per step.
    private final int promptLength;
    private final int minLength; // from this many tokens on, EOS and stop tokens end it (min_tokens)
    private final int maxLength; // at this many tokens it ends: max_tokens or the model's context length
    private final boolean ignoreEos;
    private final int[] stopTokenIds;
    private int[] tokens;
    private int numTokens;
    private int numComputed;
    private int numScheduled;
    private SequenceStatus status = SequenceStatus.WAITING;
    private int numPreemptions;
    private KvCacheManager.Handle kvHandle;
    // NOTE: tokens its KV blocks hold. A step that stays within them needs no KvCacheManager.allocateSlots call,
    // which would change nothing: it takes a block only for a token past them, and copies one only when a fork
    // shares it (this scheduler never forks). Skipping the call saves a cache miss per sequence per step.
    private int kvCapacity;
    // NOTE: its plan entry for one token within those blocks: the same every step until it takes a block, so
    // made once (null until needed, reset with kvCapacity) and shared by those plans, immutable as they are.
    // A decode step that takes no block (15 in 16) then allocates nothing and reads no other object.
    private ContinuingSequence decodeEntry;

    SequenceState(Request request, int index, long seed, int maxModelLen) {
        this.request = request;
        this.index = index;
        this.seqId = seqIdOf(request.requestId(), request.params().n(), index);
        this.params = request.params().forChild(index);
        this.seed = seed;
        this.key = new RequestKey(seqId, request.scope());
        this.promptLength = request.promptTokenIds().length;
        this.minLength = (int) Math.min(Integer.MAX_VALUE, (long) promptLength + params.minTokens());
        this.maxLength = (int) Math.min(maxModelLen, (long) promptLength + params.maxTokens());
        this.ignoreEos = params.ignoreEos();
        this.stopTokenIds = params.stopTokenIds().isEmpty()
                ? NO_TOKENS : params.stopTokenIds().stream().mapToInt(Integer::intValue).toArray();
        int capacity = maxLength - promptLength <= RESERVED_OUTPUT_TOKENS ? maxLength : promptLength + 16;
        this.tokens = Arrays.copyOf(request.promptTokenIds(), capacity);
        this.numTokens = promptLength;
    }

    /** A request's only completion keeps the request id; completion i of n > 1 is {@code id#i}. */
    public static String seqIdOf(String requestId, int n, int index) {
        return n == 1 ? requestId : requestId + "#" + index;
    }

    public Request request() {
        return request;
    }

    public int index() {
        return index;
    }

    public String seqId() {
        return seqId;
    }

    public SamplingParams params() {
        return params;
    }

    long seed() {
        return seed;
    }

    RequestKey key() {
        return key;
    }

    public int numTokens() {
        return numTokens;
    }

    public int numComputed() {
        return numComputed;
    }

    public int promptLength() {
        return promptLength;
    }

    public int numOutputTokens() {
        return numTokens - promptLength();
    }

    /** Tokens from which EOS and stop tokens end it. */
    int minLength() {
        return minLength;
    }

    /** Tokens at which it ends (max_tokens, or the model's context length). */
    int maxLength() {
        return maxLength;
    }

    boolean ignoresEos() {
        return ignoreEos;
    }

    /** Its stop token ids besides EOS; empty when none. */
    int[] stopTokenIds() {
        return stopTokenIds;
    }

    public SequenceStatus status() {
        return status;
    }

    public int numPreemptions() {
        return numPreemptions;
    }

    /** The backing array; only the first {@link #numTokens()} entries are tokens. */
    int[] tokenArray() {
        return tokens;
    }

    public int[] tokens() {
        return Arrays.copyOf(tokens, numTokens);
    }

    public int[] outputTokens() {
        return Arrays.copyOfRange(tokens, promptLength(), numTokens);
    }

    void append(int token) {
        if (numTokens == tokens.length) {
            tokens = Arrays.copyOf(tokens, tokens.length * 2);
        }
        tokens[numTokens++] = token;
    }

    void setComputed(int n) {
        numComputed = n;
    }

    /** Tokens the last plan computes for this sequence, from {@link #numComputed()} on. */
    int numScheduled() {
        return numScheduled;
    }

    void setScheduled(int n) {
        numScheduled = n;
    }

    /** Its plan entry for a step within the {@code numBlocks} blocks it holds: its table does not change. */
    ContinuingSequence entryWithinBlocks(int numScheduledTokens, int numBlocks) {
        if (numScheduledTokens != 1) {
            return new ContinuingSequence(seqId, numScheduledTokens, numBlocks, NO_BLOCKS); // a chunked prefill's rest
        }
        if (decodeEntry == null) {
            decodeEntry = new ContinuingSequence(seqId, 1, numBlocks, NO_BLOCKS);
        }
        return decodeEntry;
    }

    /** The KV manager's handle while the sequence holds blocks (running). */
    KvCacheManager.Handle kvHandle() {
        return kvHandle;
    }

    void setKvHandle(KvCacheManager.Handle handle) {
        kvHandle = handle;
        setKvCapacity(0); // NOTE: unknown until the first allocation of a running step
    }

    int kvCapacity() {
        return kvCapacity;
    }

    void setKvCapacity(int tokens) {
        kvCapacity = tokens;
        decodeEntry = null;
    }

    void setStatus(SequenceStatus s) {
        status = s;
    }

    /** Preemption by recompute: the K/V is gone, every known token will be computed again. */
    void preempt() {
        numComputed = 0;
        numPreemptions++;
        setKvHandle(null);
        status = SequenceStatus.WAITING;
    }
}
