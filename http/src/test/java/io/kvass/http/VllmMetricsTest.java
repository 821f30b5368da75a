package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The series operators' dashboards and autoscalers query (issue 19): vLLM's names, labels and buckets,
 * with values that follow the traffic.
 */
class VllmMetricsTest {
    private static final String M = "{model_name=\"stories260K\"}";
    private static TestServer server;
    private static Client client;
    private static String scrape;

    @BeforeAll
    static void start() throws InterruptedException {
        server = TestServer.start();
        client = server.client();
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", "Once upon a time", "max_tokens", 8,
                "ignore_eos", true, "n", 2)).status());
        assertEquals(200, client.post("/v1/completions", Map.of("prompt", List.of(1, 2, 3), "max_tokens", 5,
                "ignore_eos", true)).status());
        // NOTE: the engine series come from the replica's periodic load reports: wait for one after the traffic.
        long deadline = System.nanoTime() + 20_000_000_000L;
        scrape = client.get("/metrics").body();
        while (steps() < 8 && System.nanoTime() < deadline) {
            Thread.sleep(100);
            scrape = client.get("/metrics").body();
        }
    }

    private static double steps() {
        return scrape.lines().filter(l -> l.startsWith("vllm:iteration_tokens_total_count{"))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static double value(String series) {
        for (String line : scrape.split("\n")) {
            if (line.startsWith(series + " ")) {
                return Double.parseDouble(line.substring(series.length() + 1).trim());
            }
        }
        throw new AssertionError("no " + series + " in\n" + scrape);
    }

    /** A per-replica engine series (labels model_name, node, replica) of the one replica. */
    private static double engine(String name) {
        for (String line : scrape.split("\n")) {
            if (line.startsWith(name + "{model_name=\"stories260K\",node=")) {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        throw new AssertionError("no " + name + " in\n" + scrape);
    }

    private static List<String> bounds(String histogram) {
        List<String> les = new ArrayList<>();
        Matcher m = Pattern.compile("^" + Pattern.quote(histogram) + "_bucket\\{[^}]*le=\"([^\"]+)\"", Pattern.MULTILINE)
                .matcher(scrape);
        while (m.find()) {
            les.add(m.group(1));
        }
        return les;
    }

    private static List<String> strings(double... values) {
        List<String> out = new ArrayList<>();
        for (double v : values) {
            out.add(Double.toString(v));
        }
        out.add("+Inf");
        return out;
    }

    @Test
    void gpuCacheUsageIsTheV0AliasOfKvCacheUsage() {
        assertTrue(scrape.contains("# TYPE vllm:gpu_cache_usage_perc gauge"), scrape);
        assertEquals(engine("vllm:kv_cache_usage_perc"), engine("vllm:gpu_cache_usage_perc"));
    }

    @Test
    void iterationTokensCountEveryStep() {
        assertTrue(scrape.contains("# TYPE vllm:iteration_tokens_total histogram"), scrape);
        assertEquals(strings(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
                bounds("vllm:iteration_tokens_total"));
        // Steps: each decode step of the 3 sequences and the prefills; at least the longest request's 8 tokens.
        assertTrue(engine("vllm:iteration_tokens_total_count") >= 8, scrape);
        // Every prompt token went through a step (the n=2 prompt once per sequence at most), and
        // every sampled token but the last of each sequence.
        double prompts = value("vllm:prompt_tokens_total" + M);
        double generated = value("vllm:generation_tokens_total" + M);
        double sum = engine("vllm:iteration_tokens_total_sum");
        assertTrue(sum >= generated - 3 + prompts && sum <= 2 * prompts + generated, sum + " " + prompts + " " + generated);
    }

    @Test
    void perRequestTimingHistogramsHaveVllmsBuckets() {
        double[] latency = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
            240.0, 480.0, 960.0, 1920.0, 7680.0};
        for (String h : List.of("vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                "vllm:request_decode_time_seconds", "vllm:request_inference_time_seconds",
                "vllm:e2e_request_latency_seconds")) {
            assertTrue(scrape.contains("# TYPE " + h + " histogram"), h);
            assertEquals(strings(latency), bounds(h), h);
            assertEquals(3, value(h + "_count" + M), h); // three completions: n=2 and n=1
        }
        assertEquals(strings(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0), bounds("vllm:time_per_output_token_seconds"));
        assertEquals(3, value("vllm:time_per_output_token_seconds_count" + M));
        // The phases add up: inference = prefill + decode, per completion, so in the sums too.
        assertEquals(value("vllm:request_prefill_time_seconds_sum" + M) + value("vllm:request_decode_time_seconds_sum" + M),
                value("vllm:request_inference_time_seconds_sum" + M), 1e-6);
        assertTrue(value("vllm:request_inference_time_seconds_sum" + M) <= value("vllm:e2e_request_latency_seconds_sum" + M));
    }

    @Test
    void perRequestCountsAndParameters() {
        double[] tokens = {1, 2, 5, 10, 20, 50, 100, 200, 500}; // build_1_2_5_buckets(512)
        for (String h : List.of("vllm:request_prompt_tokens", "vllm:request_generation_tokens",
                "vllm:request_params_max_tokens", "vllm:request_max_num_generation_tokens")) {
            assertEquals(strings(tokens), bounds(h), h);
        }
        assertEquals(8 + 8 + 5, value("vllm:request_generation_tokens_sum" + M));
        assertEquals(3, value("vllm:request_generation_tokens_count" + M));
        assertEquals(2, value("vllm:request_params_n_count" + M));
        assertEquals(3, value("vllm:request_params_n_sum" + M));
        assertEquals(strings(1, 2, 5, 10, 20), bounds("vllm:request_params_n"));
        assertEquals(8 + 5, value("vllm:request_params_max_tokens_sum" + M));
        assertEquals(8 + 5, value("vllm:request_max_num_generation_tokens_sum" + M));
        assertEquals(2, value("vllm:request_max_num_generation_tokens_count" + M));
    }

    @Test
    void httpResponsesAreCountedByHandlerAndStatusClass() {
        assertEquals(2, value("http_requests_total{handler=\"/v1/completions\",method=\"POST\",status=\"2xx\"}"));
        client.post("/v1/completions", "{\"prompt\": 5}");
        client.get("/wp-admin/" + System.nanoTime());
        String again = client.get("/metrics").body();
        assertTrue(again.contains("http_requests_total{handler=\"/v1/completions\",method=\"POST\",status=\"4xx\"} 1"),
                again);
        assertTrue(again.contains("http_requests_total{handler=\"none\",method=\"GET\",status=\"4xx\"}"), again);
        assertTrue(again.contains("kvass:replica_up{model_name=\"stories260K\"} 1"), again);
    }

    @Test
    void cacheConfigInfoCarriesTheCacheConfigAsLabels() {
        assertTrue(scrape.contains("# TYPE vllm:cache_config_info gauge"), scrape);
        String line = scrape.lines().filter(l -> l.startsWith("vllm:cache_config_info{")).findFirst().orElseThrow();
        assertTrue(line.startsWith("vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
                + "enable_prefix_caching=\"True\",engine=\"0\",model_name=\"stories260K\",node="), line);
        assertTrue(line.endsWith(",num_cpu_blocks=\"None\",num_gpu_blocks=\""
                + client.replica().path("num_kv_blocks").asInt() + "\"} 1.0"), line);
    }
}
