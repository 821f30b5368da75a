package io.kvass.bench.loadgen;

/**
 * One prompt to send: token ids (for {@code /v1/completions}) or text (for chat), its length in tokens
 * as generated (the server's usage, when it reports one, is what the metrics count) and {@code max_tokens}.
 */
public record BenchRequest(int index, int[] promptIds, String promptText, int promptLen, int outputLen) {
    public boolean isText() {
        return promptText != null;
    }
}
