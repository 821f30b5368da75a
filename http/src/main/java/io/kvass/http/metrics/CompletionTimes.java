package io.kvass.http.metrics;

import io.kvass.scheduler.output.RequestOutput;
import java.util.HashMap;
import java.util.Map;

/**
 * One request's completions as vLLM times them: queued until first scheduled, prefill until the first
 * token, decode until the last; inference is prefill plus decode, and the time per output token is the
 * decode time over the tokens after the first. The engine measures the durations on its own clock (it may
 * run on another node); without them (-1) they are taken here, from the request's arrival, with no queue
 * time. Single-writer (the request's actor).
 */
public final class CompletionTimes {
    /** Nanoseconds from first scheduled to the first token, on the engine's clock or this one. */
    private record Started(long prefillNanos, long firstTokenAt) {
    }

    private final long arrivalNanos;
    private final int n;
    private final Map<String, Started> started = new HashMap<>();
    /** Per engine request: how many of its n completions finished, and the most tokens one of them made. */
    private final Map<String, int[]> finished = new HashMap<>();

    public CompletionTimes(long arrivalNanos, int n) {
        this.arrivalNanos = arrivalNanos;
        this.n = n;
    }

    /**
     * Notes {@code o}, received at {@code now}; when it ends its completion, records the completion's
     * times in {@code metrics}.
     */
    public void output(RequestOutput o, long now, ServingMetrics metrics, String model) {
        String key = o.requestId() + "/" + o.index();
        Started s = started.computeIfAbsent(key, k -> new Started(o.runningNanos() >= 0 ? o.runningNanos()
                : now - arrivalNanos, now));
        if (!o.finished()) {
            return;
        }
        started.remove(key);
        long inference = o.runningNanos() >= 0 ? o.runningNanos() : now - arrivalNanos;
        long decode = Math.max(0, o.runningNanos() >= 0 ? inference - s.prefillNanos() : now - s.firstTokenAt());
        metrics.completionTimes(model, Math.max(0, o.queuedNanos()) / 1e9, s.prefillNanos() / 1e9, decode / 1e9,
                inference / 1e9, o.completionTokens() > 1 ? decode / 1e9 / (o.completionTokens() - 1) : Double.NaN);
        metrics.completionTokens(model, o.promptTokens(), o.completionTokens());
        int[] f = finished.computeIfAbsent(o.requestId(), k -> new int[2]);
        f[0]++;
        f[1] = Math.max(f[1], o.completionTokens());
        if (f[0] == n) {
            finished.remove(o.requestId());
            metrics.maxGenerationTokens(model, f[1]);
        }
    }
}
