package io.kvass.bench.loadgen;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The metrics of one run, as {@code vllm bench serve} defines them, over the successful requests:
 * throughputs divide by the wall time from the first send to the last completion; TTFT is the first
 * token chunk after the send; TPOT per request is {@code (e2e - ttft) / (output_tokens - 1)} (requests
 * with one output token have none); ITL is every gap between consecutive token chunks of a request,
 * pooled; E2E is send to end of stream. Token counts come from the server's usage chunk when it sends
 * one. Peak output throughput counts token chunks per whole second of the run.
 */
public final class BenchmarkResult {
    public final Options options;
    public final String model;
    public final List<RequestResult> requests;
    public final double durationS;
    public final int completed;
    public final int failed;
    public final long totalInputTokens;
    public final long totalOutputTokens;
    public final double requestThroughput;
    public final double outputThroughput;
    public final double totalTokenThroughput;
    public final double peakOutputThroughput;
    public final int peakConcurrentRequests;
    public final int outputLenMismatches;
    public final int usageMissing;
    public final Stats ttft;
    public final Stats tpot;
    public final Stats itl;
    public final Stats e2el;
    public final Map<String, Integer> errors;
    public final double loadAverageStart;
    public final double loadAverageEnd;
    /** CPU seconds the load generator's own JVM used during the run (it competes with a server on the same cores). */
    public final double clientCpuS;

    BenchmarkResult(Options options, String model, List<RequestResult> requests, long startNs, long endNs,
                    double loadAverageStart, double loadAverageEnd, double clientCpuS) {
        this.options = options;
        this.model = model;
        this.requests = List.copyOf(requests);
        this.durationS = (endNs - startNs) / 1e9;
        this.loadAverageStart = loadAverageStart;
        this.loadAverageEnd = loadAverageEnd;
        this.clientCpuS = clientCpuS;
        double[] p = options.percentiles();
        List<Double> ttfts = new ArrayList<>();
        List<Double> tpots = new ArrayList<>();
        List<Double> e2els = new ArrayList<>();
        List<double[]> itls = new ArrayList<>();
        Map<String, Integer> errs = new LinkedHashMap<>();
        long in = 0;
        long out = 0;
        int ok = 0;
        int mismatches = 0;
        int noUsage = 0;
        for (RequestResult r : requests) {
            if (!r.success()) {
                errs.merge(r.error(), 1, Integer::sum);
                continue;
            }
            ok++;
            in += r.promptTokens();
            out += r.outputTokens();
            ttfts.add(r.ttftMs());
            e2els.add(r.e2eMs());
            if (r.outputTokens() > 1) {
                tpots.add(r.tpotMs());
            }
            itls.add(r.itlsMs());
            if (r.outputTokens() != r.request().outputLen()) {
                mismatches++;
            }
            if (!r.usageReported()) {
                noUsage++;
            }
        }
        this.completed = ok;
        this.failed = requests.size() - ok;
        this.totalInputTokens = in;
        this.totalOutputTokens = out;
        this.outputLenMismatches = mismatches;
        this.usageMissing = noUsage;
        this.errors = errs;
        this.requestThroughput = ok / durationS;
        this.outputThroughput = out / durationS;
        this.totalTokenThroughput = (in + out) / durationS;
        this.ttft = Stats.of(unbox(ttfts), p);
        this.tpot = Stats.of(unbox(tpots), p);
        this.e2el = Stats.of(unbox(e2els), p);
        this.itl = Stats.of(itls.stream().flatMapToDouble(Arrays::stream).toArray(), p);
        this.peakConcurrentRequests = peakConcurrency(requests);
        this.peakOutputThroughput = peakPerSecond(requests, startNs);
    }

    private static double[] unbox(List<Double> xs) {
        return xs.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** Most requests in flight at once (send to end of stream), failures included. */
    static int peakConcurrency(List<RequestResult> requests) {
        long[][] events = new long[requests.size() * 2][];
        int i = 0;
        for (RequestResult r : requests) {
            events[i++] = new long[] {r.startNs(), 1};
            events[i++] = new long[] {r.endNs(), -1};
        }
        // ends before starts at the same instant
        Arrays.sort(events, (a, b) -> a[0] != b[0] ? Long.compare(a[0], b[0]) : Long.compare(a[1], b[1]));
        int now = 0;
        int peak = 0;
        for (long[] e : events) {
            now += (int) e[1];
            peak = Math.max(peak, now);
        }
        return peak;
    }

    /** The most token chunks of successful requests that arrived within one whole second of the run. */
    static double peakPerSecond(List<RequestResult> requests, long startNs) {
        Map<Long, Integer> perSecond = new LinkedHashMap<>();
        for (RequestResult r : requests) {
            if (!r.success()) {
                continue;
            }
            for (long t : r.chunkTimesNs()) {
                perSecond.merge(Math.max(0, (t - startNs)) / 1_000_000_000L, 1, Integer::sum);
            }
        }
        return perSecond.values().stream().mapToInt(Integer::intValue).max().orElse(0);
    }

    // ---- output ----

    private static String pct(double q) {
        return q == Math.rint(q) ? String.valueOf((long) q) : String.valueOf(q).replace('.', '_');
    }

    /** The vLLM-style table. */
    public String table() {
        StringBuilder sb = new StringBuilder();
        sb.append(center(" Serving Benchmark Result ", '=')).append('\n');
        row(sb, "Successful requests:", String.valueOf(completed));
        row(sb, "Failed requests:", String.valueOf(failed));
        row(sb, "Maximum request concurrency:", options.maxConcurrency() > 0
                ? String.valueOf(options.maxConcurrency()) : "unbounded");
        row(sb, "Request rate (req/s):", Double.isInfinite(options.requestRate()) ? "inf"
                : fmt(options.requestRate()) + " (burstiness " + fmt(options.burstiness()) + ")");
        row(sb, "Benchmark duration (s):", fmt(durationS));
        row(sb, "Total input tokens:", String.valueOf(totalInputTokens));
        row(sb, "Total generated tokens:", String.valueOf(totalOutputTokens));
        row(sb, "Request throughput (req/s):", fmt(requestThroughput));
        row(sb, "Output token throughput (tok/s):", fmt(outputThroughput));
        row(sb, "Peak output token throughput (tok/s):", fmt(peakOutputThroughput));
        row(sb, "Peak concurrent requests:", String.valueOf(peakConcurrentRequests));
        row(sb, "Total token throughput (tok/s):", fmt(totalTokenThroughput));
        section(sb, "Time to First Token", "TTFT", ttft);
        section(sb, "Time per Output Token (excl. 1st token)", "TPOT", tpot);
        section(sb, "Inter-token Latency", "ITL", itl);
        section(sb, "End-to-end Latency", "E2EL", e2el);
        sb.append("=".repeat(50)).append('\n');
        sb.append(String.format(Locale.ROOT, "load average %.2f at the start, %.2f at the end; "
                + "load generator CPU %.2f s (%.2f cores)%n", loadAverageStart, loadAverageEnd, clientCpuS,
                clientCpuS / durationS));
        if (outputLenMismatches > 0) {
            sb.append("note: ").append(outputLenMismatches)
                    .append(" successful request(s) returned a different number of tokens than max_tokens\n");
        }
        if (usageMissing > 0) {
            sb.append("note: ").append(usageMissing)
                    .append(" request(s) had no usage chunk; their output tokens are token chunks\n");
        }
        errors.forEach((e, n) -> sb.append("error x").append(n).append(": ").append(e).append('\n'));
        return sb.toString();
    }

    private void section(StringBuilder sb, String title, String name, Stats s) {
        sb.append(center(title, '-')).append('\n');
        row(sb, "Mean " + name + " (ms):", fmt(s.mean()));
        row(sb, "Median " + name + " (ms):", fmt(s.median()));
        row(sb, "Std " + name + " (ms):", fmt(s.std()));
        for (Map.Entry<Double, Double> e : s.percentiles().entrySet()) {
            if (e.getKey() != 50.0) { // the median, already shown
                row(sb, "P" + pct(e.getKey()) + " " + name + " (ms):", fmt(e.getValue()));
            }
        }
    }

    private static String center(String title, char fill) {
        int total = 50;
        int left = Math.max(0, (total - title.length()) / 2);
        int right = Math.max(0, total - title.length() - left);
        return String.valueOf(fill).repeat(left) + title + String.valueOf(fill).repeat(right);
    }

    private static void row(StringBuilder sb, String label, String value) {
        sb.append(String.format(Locale.ROOT, "%-40s %-10s%n", label, value));
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    /** The result as JSON, with vLLM's key names. */
    public ObjectNode toJson() {
        ObjectNode o = OpenAiStreamClient.JSON.createObjectNode();
        o.put("date", java.time.OffsetDateTime.now().withNano(0).toString());
        o.put("backend", options.chat() ? "openai-chat" : "openai");
        o.put("base_url", options.baseUrl());
        o.put("endpoint", options.endpoint());
        o.put("model_id", model);
        o.put("dataset_name", options.dataset());
        o.put("num_prompts", options.numPrompts());
        o.put("random_input_len", options.randomInputLen());
        o.put("random_output_len", options.randomOutputLen());
        o.put("random_range_ratio", options.randomRangeRatio());
        o.put("random_prefix_len", options.randomPrefixLen());
        o.put("seed", options.seed());
        o.put("ignore_eos", options.ignoreEos());
        if (Double.isInfinite(options.requestRate())) {
            o.put("request_rate", "inf");
        } else {
            o.put("request_rate", options.requestRate());
        }
        o.put("burstiness", options.burstiness());
        if (options.maxConcurrency() > 0) {
            o.put("max_concurrency", options.maxConcurrency());
        } else {
            o.putNull("max_concurrency");
        }
        o.put("duration", durationS);
        o.put("completed", completed);
        o.put("failed", failed);
        o.put("total_input_tokens", totalInputTokens);
        o.put("total_output_tokens", totalOutputTokens);
        o.put("request_throughput", requestThroughput);
        o.put("output_throughput", outputThroughput);
        o.put("total_token_throughput", totalTokenThroughput);
        o.put("max_output_tokens_per_s", peakOutputThroughput);
        o.put("max_concurrent_requests", peakConcurrentRequests);
        o.put("output_len_mismatches", outputLenMismatches);
        putStats(o, "ttft", ttft);
        putStats(o, "tpot", tpot);
        putStats(o, "itl", itl);
        putStats(o, "e2el", e2el);
        o.put("load_average_start", loadAverageStart);
        o.put("load_average_end", loadAverageEnd);
        o.put("client_cpu_s", clientCpuS);
        o.put("available_processors", Runtime.getRuntime().availableProcessors());
        ObjectNode errs = o.putObject("error_counts");
        errors.forEach(errs::put);
        if (options.saveDetailed()) {
            ArrayNode inputLens = o.putArray("input_lens");
            ArrayNode outputLens = o.putArray("output_lens");
            ArrayNode ttfts = o.putArray("ttfts");
            ArrayNode itls = o.putArray("itls");
            ArrayNode errors = o.putArray("errors");
            for (RequestResult r : requests) {
                inputLens.add(r.promptTokens());
                outputLens.add(r.success() ? r.outputTokens() : 0);
                ttfts.add(r.success() ? r.ttftMs() / 1000 : 0.0);
                ArrayNode gaps = itls.addArray();
                for (double g : r.success() ? r.itlsMs() : new double[0]) {
                    gaps.add(g / 1000);
                }
                errors.add(r.success() ? "" : r.error());
            }
        }
        return o;
    }

    private static void putStats(ObjectNode o, String name, Stats s) {
        o.put("mean_" + name + "_ms", s.mean());
        o.put("median_" + name + "_ms", s.median());
        o.put("std_" + name + "_ms", s.std());
        o.put("min_" + name + "_ms", s.min());
        o.put("max_" + name + "_ms", s.max());
        for (Map.Entry<Double, Double> e : s.percentiles().entrySet()) {
            o.put("p" + pct(e.getKey()) + "_" + name + "_ms", e.getValue());
        }
    }
}
