package io.kvass.scheduler.core;

import io.kvass.kvpaging.RequestKey;
import io.kvass.worker.sampling.SamplingParams;
import java.util.Arrays;

/**
 * One sequence (one of a request's n completions) as the scheduler tracks it.
 * NOTE: {@code numComputed <= numTokens}; tokens {@code [numComputed, numTokens)} await compute. What the
 * scheduler's per-step loops read and write of a running sequence is kept in its {@link RunningTable} slot.
 */
public final class SequenceState {
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
    // NOTE: its stop rules as plain numbers, which the running table copies, so the check after each token reads
    // nothing but the table and the token: reading them from the params and the request's prompt was three or
    // four more cache misses per sequence per step.
    private final int promptLength;
    private final int minLength; // from this many tokens on, EOS and stop tokens end it (min_tokens)
    private final int maxLength; // at this many tokens it ends: max_tokens or the model's context length
    private final boolean ignoreEos;
    private final int[] stopTokenIds;
    // NOTE: while it runs, its token array and count live in the running table (see RunningTable), not here
    private int[] tokens;
    private int numTokens;
    private RunningTable running;
    private int runningSlot = -1;
    private SequenceStatus status = SequenceStatus.WAITING;
    private int numPreemptions;
    /** When the scheduler got it and when it first gave it a place in a step (this JVM's System.nanoTime()). */
    private final long addedNanos = System.nanoTime();
    private long firstScheduledNanos;

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
        int[] resumed = request.resumeTokens();
        int capacity = maxLength - promptLength <= RESERVED_OUTPUT_TOKENS ? maxLength
                : promptLength + resumed.length + 16;
        this.tokens = Arrays.copyOf(request.promptTokenIds(), capacity);
        // NOTE: resumed output tokens (a migrated request) are outputs already: they are recomputed like a
        // preempted sequence's, counted against max_tokens, and never sampled or sent again.
        System.arraycopy(resumed, 0, tokens, promptLength, resumed.length);
        this.numTokens = promptLength + resumed.length;
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
        return isInRunningTable() ? running.numTokens(runningSlot) : numTokens;
    }

    /** Tokens whose K/V its blocks hold; none unless it runs (a preempted sequence recomputes them all). */
    public int numComputed() {
        return isInRunningTable() ? running.numComputed(runningSlot) : 0;
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
        return isInRunningTable() ? running.tokens(runningSlot) : tokens;
    }

    public int[] tokens() {
        return Arrays.copyOf(tokenArray(), numTokens());
    }

    public int[] outputTokens() {
        return Arrays.copyOfRange(tokenArray(), promptLength(), numTokens());
    }

    /** Its slot in the running table, -1 when it is not in one. */
    int runningSlot() {
        return runningSlot;
    }

    private boolean isInRunningTable() {
        return runningSlot >= 0;
    }

    /** Called by the running table as it takes the sequence in, with its tokens. */
    void enterRunning(RunningTable table, int slot) {
        running = table;
        runningSlot = slot;
        tokens = null;
    }

    /** Called by the running table as the sequence leaves it: its tokens come back. */
    void leaveRunning(int[] tokenArray, int count) {
        tokens = tokenArray;
        numTokens = count;
        running = null;
        runningSlot = -1;
    }

    void setStatus(SequenceStatus s) {
        status = s;
        if (s == SequenceStatus.RUNNING && firstScheduledNanos == 0) {
            firstScheduledNanos = System.nanoTime();
        }
    }

    /** How long it waited before its first step (vLLM's queue time); -1 while it has not run. */
    public long queuedNanos() {
        return firstScheduledNanos == 0 ? -1 : firstScheduledNanos - addedNanos;
    }

    /** How long since its first step, at {@code now} (this JVM's System.nanoTime()); -1 while it has not run. */
    public long runningNanos(long now) {
        return firstScheduledNanos == 0 ? -1 : now - firstScheduledNanos;
    }

    /**
     * Preemption by recompute, once it has left the running table: the K/V is gone, every known token will be
     * computed again.
     */
    void preempt() {
        numPreemptions++;
        status = SequenceStatus.WAITING;
    }
}
