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

    private final Request request;
    private final int index;
    private final String seqId;
    private final SamplingParams params;
    private final long seed;
    private final RequestKey key;
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

    SequenceState(Request request, int index, long seed) {
        this.request = request;
        this.index = index;
        this.seqId = seqIdOf(request.requestId(), request.params().n(), index);
        this.params = request.params().forChild(index);
        this.seed = seed;
        this.key = new RequestKey(seqId, request.scope());
        this.tokens = Arrays.copyOf(request.promptTokenIds(), request.promptTokenIds().length + 16);
        this.numTokens = request.promptTokenIds().length;
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
        return request.promptTokenIds().length;
    }

    public int numOutputTokens() {
        return numTokens - promptLength();
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
