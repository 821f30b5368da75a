package io.kvass.bench.loadgen;

import java.util.Arrays;

/**
 * What one streamed request measured. Times are {@link System#nanoTime()} values. A "token chunk" is an
 * SSE event whose first choice carries non-empty text ({@code text}, or {@code delta.content} for chat):
 * chat's opening role-only chunk and a finish-only chunk are not tokens. Written by one response's
 * subscriber (signals are serial), read once its future completed.
 */
public final class RequestResult {
    private final BenchRequest request;
    long startNs;
    long endNs;
    private long[] chunkNs = new long[16];
    private int chunks;
    int usagePromptTokens = -1;
    int usageCompletionTokens = -1;
    long generatedChars;
    boolean sawDone;
    String error;

    RequestResult(BenchRequest request) {
        this.request = request;
    }

    public BenchRequest request() {
        return request;
    }

    void tokenChunk(long nowNs, int chars) {
        if (chunks == chunkNs.length) {
            chunkNs = Arrays.copyOf(chunkNs, chunks * 2);
        }
        chunkNs[chunks++] = nowNs;
        generatedChars += chars;
    }

    void fail(String message) {
        if (error == null) {
            error = message;
        }
    }

    /** Succeeded: no error, and at least one token arrived. */
    public boolean success() {
        return error == null && chunks > 0;
    }

    public String error() {
        if (error != null) {
            return error;
        }
        return chunks == 0 ? "no token in the response" : null;
    }

    public int chunkCount() {
        return chunks;
    }

    /** Token chunk arrival times (nanoTime). */
    public long[] chunkTimesNs() {
        return Arrays.copyOf(chunkNs, chunks);
    }

    public long startNs() {
        return startNs;
    }

    public long endNs() {
        return endNs;
    }

    /** Prompt tokens: the server's usage if reported, else the generated length. */
    public int promptTokens() {
        return usagePromptTokens >= 0 ? usagePromptTokens : request.promptLen();
    }

    /** Output tokens: the server's usage if reported, else one per token chunk. */
    public int outputTokens() {
        return usageCompletionTokens >= 0 ? usageCompletionTokens : chunks;
    }

    public boolean usageReported() {
        return usageCompletionTokens >= 0;
    }

    public double ttftMs() {
        return chunks == 0 ? Double.NaN : (chunkNs[0] - startNs) / 1e6;
    }

    public double e2eMs() {
        return (endNs - startNs) / 1e6;
    }

    /** Gaps between consecutive token chunks, in ms. */
    public double[] itlsMs() {
        double[] out = new double[Math.max(0, chunks - 1)];
        for (int i = 1; i < chunks; i++) {
            out[i - 1] = (chunkNs[i] - chunkNs[i - 1]) / 1e6;
        }
        return out;
    }

    /** (e2e - ttft) / (output tokens - 1), NaN for a single output token. */
    public double tpotMs() {
        int out = outputTokens();
        return out > 1 ? (e2eMs() - ttftMs()) / (out - 1) : Double.NaN;
    }
}
