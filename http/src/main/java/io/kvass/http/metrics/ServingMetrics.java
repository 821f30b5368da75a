package io.kvass.http.metrics;

import io.kvass.scheduler.engine.AdapterResidency;
import io.kvass.scheduler.engine.EngineStats;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.prometheus.metrics.config.EscapingScheme;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import java.util.function.ToDoubleFunction;
import java.util.stream.Collectors;

/**
 * The serving metrics, under vLLM's names ({@code vllm:...}, label {@code model_name}), in a
 * Prometheus registry of their own. Request metrics are recorded as requests stream; engine gauges
 * report the replica's last {@link EngineStats} (refreshed before each scrape).
 *
 * <p>LoRA: vLLM's {@code vllm:lora_requests_info} (one sample, the current state, its value the time
 * of the scrape as vLLM's is the time of its last update), and per-adapter token and request counters
 * ({@code kvass:lora_*}, label {@code lora_name}), which vLLM does not have. An unloaded adapter's
 * series stay (its last requests may still be counting when it goes).
 *
 * <p>NOTE: counters are declared without {@code _total}; the client appends it on exposition, exactly
 * as Python's prometheus_client does for vLLM ({@code vllm:prompt_tokens_total}).
 */
public final class ServingMetrics {
    static final String MODEL = "model_name";
    static final String LORA = "lora_name";
    static final String REPLICA = "replica";
    static final String NODE = "node";
    static final String CONTENT_TYPE = PrometheusTextFormatWriter.CONTENT_TYPE;

    private final PrometheusRegistry registry = new PrometheusRegistry();
    /** The replicas' last reports, as the gateway's router holds them (replaced on every scrape). */
    private volatile List<ReplicaLoad> replicas = List.of();
    /** Models served with LoRA, and their slots per replica. */
    private final Map<String, Integer> loraModels = new ConcurrentHashMap<>();
    private final Counter routerDecisions;
    private final Counter migrations;
    private final Counter migrationPrefill;
    private final Histogram gatewayQueueTime;
    private final Counter loraPromptTokens;
    private final Counter loraGenerationTokens;
    private final Counter loraRequestSuccess;
    private final Counter promptTokens;
    private final Counter generationTokens;
    private final Counter requestSuccess;
    private final Histogram timeToFirstToken;
    private final Histogram interTokenLatency;
    private final Histogram e2eLatency;
    private final Histogram queueTime;
    private final Histogram prefillTime;
    private final Histogram decodeTime;
    private final Histogram inferenceTime;
    private final Histogram timePerOutputToken;
    private final Histogram paramsN;
    private final Counter httpRequests;
    private final Map<String, Boolean> replicasUp = new ConcurrentHashMap<>();
    /** Bounded by max_model_len (vLLM's 1-2-5 buckets): made when the first model registers. */
    private Histogram promptTokensPerRequest;
    private Histogram generationTokensPerRequest;
    private Histogram maxTokensParam;
    private Histogram maxGenerationTokensPerRequest;
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.builder()
            .setIncludeCreatedTimestamps(false).build();

    public ServingMetrics() {
        engineGauge("vllm:num_requests_running", "Number of requests in model execution batches.", EngineStats::numRunning);
        engineGauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", EngineStats::numWaiting);
        engineGauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", EngineStats::kvUsage);
        // NOTE: vLLM V0's name, still what most Grafana boards and KEDA triggers query; vLLM V1 exports both.
        engineGauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."
                + "DEPRECATED: Use vllm:kv_cache_usage_perc instead.", EngineStats::kvUsage);
        engineCounter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                EngineStats::prefixCacheQueries);
        engineCounter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                EngineStats::prefixCacheHits);
        engineCounter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.",
                EngineStats::numPreemptions);
        promptTokens = Counter.builder().name("vllm:prompt_tokens").help("Number of prefill tokens processed.")
                .labelNames(MODEL).register(registry);
        generationTokens = Counter.builder().name("vllm:generation_tokens").help("Number of generation tokens processed.")
                .labelNames(MODEL).register(registry);
        requestSuccess = Counter.builder().name("vllm:request_success").help("Count of successfully processed requests.")
                .labelNames(MODEL, "finished_reason").register(registry);
        timeToFirstToken = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                Buckets.TTFT);
        interTokenLatency = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                Buckets.TOKEN_LATENCY);
        e2eLatency = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                Buckets.REQUEST_LATENCY);
        queueTime = histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                Buckets.REQUEST_LATENCY);
        inferenceTime = histogram("vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.", Buckets.REQUEST_LATENCY);
        prefillTime = histogram("vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.", Buckets.REQUEST_LATENCY);
        decodeTime = histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
                Buckets.REQUEST_LATENCY);
        timePerOutputToken = histogram("vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.", Buckets.TOKEN_LATENCY);
        paramsN = histogram("vllm:request_params_n", "Histogram of the n request parameter.", Buckets.N);
        // NOTE: as vLLM's server exports it (prometheus-fastapi-instrumentator): status grouped as 2xx/4xx/5xx, the
        // route as handler ("none" for paths that are not routes, so a scanner cannot grow the series).
        httpRequests = Counter.builder().name("http_requests").help("Total number of requests by method, status and handler.")
                .labelNames("handler", "method", "status").register(registry);
        GaugeWithCallback.builder().name("kvass:replica_up")
                .help("Whether the model's replica answered the last scrape (1) or not (0).").labelNames(MODEL)
                .callback(cb -> replicasUp.forEach((model, up) -> cb.call(up ? 1 : 0, model)))
                .register(registry);
        GaugeWithCallback.builder().name("vllm:lora_requests_info").help("Running stats on lora requests.")
                .labelNames(MODEL, "max_lora", "waiting_lora_adapters", "running_lora_adapters")
                .callback(cb -> loraModels.forEach((model, maxLoras) -> {
                    List<AdapterResidency> all = replicas.stream().filter(r -> r.identity().model().equals(model))
                            .flatMap(r -> r.adapters().stream()).toList();
                    cb.call(System.currentTimeMillis() / 1000.0, model, Integer.toString(maxLoras),
                            names(all, ServingMetrics::waiting), names(all, s -> s.running() > 0));
                }))
                .register(registry);
        routerDecisions = Counter.builder().name("kvass:router_decisions")
                .help("Requests this gateway routed, by why it chose the replica (PREFIX, ADAPTER, LOAD, SPILL, "
                        + "ROUND_ROBIN).").labelNames(MODEL, "reason").register(registry);
        migrations = Counter.builder().name("kvass:request_migrations")
                .help("Completions continued on another replica after theirs was lost or drained.")
                .labelNames(MODEL, "reason").register(registry);
        migrationPrefill = Counter.builder().name("kvass:migration_prefill_tokens")
                .help("Tokens recomputed by migrated completions (prompt plus the tokens already delivered).")
                .labelNames(MODEL).register(registry);
        gatewayQueueTime = histogram("kvass:gateway_queue_time_seconds",
                "Time a request waited at this gateway for a replica with room.", Buckets.TTFT);
        loraPromptTokens = Counter.builder().name("kvass:lora_prompt_tokens")
                .help("Number of prefill tokens processed, per LoRA adapter.").labelNames(MODEL, LORA).register(registry);
        loraGenerationTokens = Counter.builder().name("kvass:lora_generation_tokens")
                .help("Number of generation tokens processed, per LoRA adapter.").labelNames(MODEL, LORA)
                .register(registry);
        loraRequestSuccess = Counter.builder().name("kvass:lora_request_success")
                .help("Count of processed requests, per LoRA adapter.").labelNames(MODEL, LORA, "finished_reason")
                .register(registry);
    }

    /**
     * An adapter has a waiting request when it has more requests in flight than sequences running.
     * NOTE: a request with n > 1 whose sequences run only in part is not counted as waiting.
     */
    private static boolean waiting(AdapterResidency s) {
        return s.inFlight() > s.running();
    }

    private static String names(List<AdapterResidency> adapters, Predicate<AdapterResidency> which) {
        return adapters.stream().filter(which).map(AdapterResidency::name).distinct().sorted()
                .collect(Collectors.joining(","));
    }

    /** Per replica: labelled with its model, replica id and node. */
    private void engineGauge(String name, String help, ToDoubleFunction<EngineStats> value) {
        GaugeWithCallback.builder().name(name).help(help).labelNames(MODEL, REPLICA, NODE)
                .callback(cb -> replicas.forEach(r -> cb.call(value.applyAsDouble(r.stats()), r.identity().model(),
                        r.identity().replicaId(), r.identity().node())))
                .register(registry);
    }

    private void engineCounter(String name, String help, ToDoubleFunction<EngineStats> value) {
        CounterWithCallback.builder().name(name).help(help).labelNames(MODEL, REPLICA, NODE)
                .callback(cb -> replicas.forEach(r -> cb.call(value.applyAsDouble(r.stats()), r.identity().model(),
                        r.identity().replicaId(), r.identity().node())))
                .register(registry);
    }

    private Histogram histogram(String name, String help, double[] buckets) {
        return Histogram.builder().name(name).help(help).labelNames(MODEL).classicOnly().classicUpperBounds(buckets)
                .register(registry);
    }

    /** Makes the model's series appear (at zero) before its first request. */
    public void register(String model) {
        register(model, 0);
    }

    /**
     * Makes the model's series appear (at zero) before its first request; {@code maxModelLen} bounds the
     * token-count histograms (the first model's sets them: one set of buckets per metric).
     */
    public synchronized void register(String model, int maxModelLen) {
        if (promptTokensPerRequest == null) {
            double[] tokens = Buckets.oneTwoFive(maxModelLen > 0 ? maxModelLen : 1 << 20);
            promptTokensPerRequest = histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                    tokens);
            generationTokensPerRequest = histogram("vllm:request_generation_tokens",
                    "Number of generation tokens processed.", tokens);
            maxTokensParam = histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                    tokens);
            maxGenerationTokensPerRequest = histogram("vllm:request_max_num_generation_tokens",
                    "Histogram of maximum number of requested generation tokens.", tokens);
        }
        for (Histogram h : List.of(timeToFirstToken, interTokenLatency, e2eLatency, queueTime, prefillTime, decodeTime,
                inferenceTime, timePerOutputToken, paramsN, promptTokensPerRequest, generationTokensPerRequest,
                maxTokensParam, maxGenerationTokensPerRequest)) {
            h.labelValues(model);
        }
        promptTokens.labelValues(model);
        generationTokens.labelValues(model);
    }

    private static final java.util.Set<String> HANDLERS = java.util.Set.of("/health", "/version", "/metrics", "/tokenize",
            "/detokenize", "/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/load_lora_adapter",
            "/v1/unload_lora_adapter", "/admin/replicas", "/admin/adapters");

    /** One HTTP response of the routes. */
    public void httpResponse(String path, String method, int status) {
        String handler = HANDLERS.contains(path) ? path : "none";
        String m = switch (method) {
            case "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS" -> method;
            default -> "other";
        };
        httpRequests.labelValues(handler, m, (status / 100) + "xx").inc();
    }

    /** Whether {@code model}'s replica answered the stats query of this scrape. */
    public void replicaAvailable(String model, boolean up) {
        replicasUp.put(model, up);
    }

    /** One completion's phases (seconds), as vLLM's request timing histograms; {@code tpot} NaN when undefined. */
    public void completionTimes(String model, double queue, double prefill, double decode, double inference,
                                double tpot) {
        queueTime.labelValues(model).observe(queue);
        prefillTime.labelValues(model).observe(prefill);
        decodeTime.labelValues(model).observe(decode);
        inferenceTime.labelValues(model).observe(inference);
        if (!Double.isNaN(tpot)) {
            timePerOutputToken.labelValues(model).observe(tpot);
        }
    }

    /** One completion's prompt and generated token counts. */
    public void completionTokens(String model, int prompt, int generated) {
        if (promptTokensPerRequest == null) {
            register(model, 0);
        }
        promptTokensPerRequest.labelValues(model).observe(prompt);
        generationTokensPerRequest.labelValues(model).observe(generated);
    }

    /** One request's parameters: n, max_tokens (per prompt), and the most tokens any of its completions made. */
    public void requestParams(String model, int n, int maxTokens) {
        if (promptTokensPerRequest == null) {
            register(model, 0);
        }
        paramsN.labelValues(model).observe(n);
        maxTokensParam.labelValues(model).observe(maxTokens);
    }

    public void maxGenerationTokens(String model, int tokens) {
        if (promptTokensPerRequest == null) {
            register(model, 0);
        }
        maxGenerationTokensPerRequest.labelValues(model).observe(tokens);
    }

    /** Reports {@code model}'s LoRA adapters in {@code vllm:lora_requests_info}. */
    public void registerLora(String model, int maxLoras) {
        loraModels.put(model, maxLoras);
    }

    public void loraPromptTokens(String model, String adapter, int tokens) {
        loraPromptTokens.labelValues(model, adapter).inc(tokens);
    }

    public void loraGenerationTokens(String model, String adapter, int tokens) {
        loraGenerationTokens.labelValues(model, adapter).inc(tokens);
    }

    public void loraFinished(String model, String adapter, String finishedReason) {
        loraRequestSuccess.labelValues(model, adapter, finishedReason).inc();
    }

    /** The router sent a request of {@code model} to a replica for {@code reason}, after holding it this long. */
    public void routed(String model, String reason, double secondsHeld) {
        routerDecisions.labelValues(model, reason).inc();
        gatewayQueueTime.labelValues(model).observe(secondsHeld);
    }

    /** A completion moved to another replica for {@code reason}, recomputing {@code tokens} there. */
    public void migrated(String model, String reason, int tokens) {
        migrations.labelValues(model, reason).inc();
        migrationPrefill.labelValues(model).inc(tokens);
    }

    /** The replicas' latest reports, for the per-replica series. */
    public void replicas(List<ReplicaLoad> loads) {
        replicas = List.copyOf(loads);
    }

    public void promptTokens(String model, int tokens) {
        promptTokens.labelValues(model).inc(tokens);
    }

    public void generationTokens(String model, int tokens) {
        generationTokens.labelValues(model).inc(tokens);
    }

    public void timeToFirstToken(String model, double seconds) {
        timeToFirstToken.labelValues(model).observe(seconds);
    }

    public void interTokenLatency(String model, double seconds) {
        interTokenLatency.labelValues(model).observe(seconds);
    }

    /** One finished completion: its reason (stop, length, abort) and its latency from arrival. */
    public void finished(String model, String finishedReason, double e2eSeconds) {
        requestSuccess.labelValues(model, finishedReason).inc();
        e2eLatency.labelValues(model).observe(e2eSeconds);
    }

    /** The Prometheus text format (0.0.4), names exactly as registered. */
    public byte[] scrape() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(8192);
        try {
            writer.write(out, registry.scrape(), EscapingScheme.ALLOW_UTF8);
            StringBuilder more = new StringBuilder();
            List<ReplicaLoad> now = replicas;
            TextBlocks.iterationTokens(more, now);
            TextBlocks.cacheConfig(more, now);
            out.write(more.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
