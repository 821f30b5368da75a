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

    /** vLLM's buckets. */
    private static final double[] TTFT_BUCKETS = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
        1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
    private static final double[] ITL_BUCKETS = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
        2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
    private static final double[] E2E_BUCKETS = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
        50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

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
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.builder()
            .setIncludeCreatedTimestamps(false).build();

    public ServingMetrics() {
        engineGauge("vllm:num_requests_running", "Number of requests in model execution batches.", EngineStats::numRunning);
        engineGauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", EngineStats::numWaiting);
        engineGauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", EngineStats::kvUsage);
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
                TTFT_BUCKETS);
        interTokenLatency = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                ITL_BUCKETS);
        e2eLatency = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                E2E_BUCKETS);
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
                "Time a request waited at this gateway for a replica with room.", TTFT_BUCKETS);
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
        promptTokens.labelValues(model);
        generationTokens.labelValues(model);
        timeToFirstToken.labelValues(model);
        interTokenLatency.labelValues(model);
        e2eLatency.labelValues(model);
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
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
