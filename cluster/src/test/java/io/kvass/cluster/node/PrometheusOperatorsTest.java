package io.kvass.cluster.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.cluster.cli.ServeCommand;
import io.kvass.worker.testing.Fixtures;
import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The operators' files in conf/ against the real tools (issue 19): promtool checks the alert rules and
 * runs their unit tests, and a real Prometheus scrapes a real {@code kvass serve}, evaluates every rule
 * without error, fires the adapter-load alert when loads fail, and answers every query of the Grafana
 * dashboard. Needs Debian's {@code prometheus} package ({@code .ci/run} installs it).
 */
class PrometheusOperatorsTest {
    private static final Path CONF = Path.of("..", "conf").toAbsolutePath().normalize();
    private static final Path RULES = CONF.resolve("prometheus/kvass-alerts.yml");
    private static final Path DASHBOARD = CONF.resolve("grafana/kvass-dashboard.json");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @TempDir
    Path tmp;

    private static Optional<Path> tool(String name) {
        return Stream.of(System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
                .map(dir -> Path.of(dir, name)).filter(Files::isExecutable).findFirst();
    }

    private static Path required(String name) {
        Optional<Path> found = tool(name);
        assumeTrue(found.isPresent(), name + " is not installed (Debian: apt-get install prometheus; .ci/run does it)");
        return found.get();
    }

    private static String run(Path tool, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(tool.toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(RULES.getParent().toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "promtool hangs");
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + ":\n" + out);
        return out;
    }

    @Test
    void promtoolChecksTheRulesAndTheirUnitTests() throws Exception {
        Path promtool = required("promtool");
        assertTrue(run(promtool, "check", "rules", RULES.toString()).contains("SUCCESS: 6 rules found"));
        assertTrue(run(promtool, "test", "rules", "kvass-alerts.test.yml").contains("SUCCESS"));
    }

    @Test
    void theDashboardIsValidJsonWithPanelsAndQueries() throws IOException {
        JsonNode dashboard = JSON.readTree(DASHBOARD.toFile());
        assertEquals("kvass-serving", dashboard.path("uid").asText());
        assertTrue(dashboard.path("panels").size() >= 10);
        assertTrue(dashboardQueries(dashboard).stream().anyMatch(q -> q.contains("vllm:kv_cache_usage_perc")));
    }

    private static List<String> dashboardQueries(JsonNode dashboard) {
        List<String> queries = new ArrayList<>();
        for (JsonNode panel : dashboard.path("panels")) {
            for (JsonNode target : panel.path("targets")) {
                queries.add(target.path("expr").asText());
            }
        }
        return queries;
    }

    @Test
    void aRealPrometheusScrapesKvassServeAndEvaluatesTheRules() throws Exception {
        Path prometheus = required("prometheus");
        ServingNode node = ServingNode.start(ServeCommand.settings(new String[] {"serve", "--model",
            Fixtures.stories260K().toString(), "--host", "127.0.0.1", "--port", "0", "--kv-cache-memory", "32M",
            "--max-num-seqs", "8", "--threads", "1"}), UnaryOperator.identity());
        Process server = null;
        try {
            URI kvass = URI.create("http://127.0.0.1:" + node.httpPort());
            for (int i = 0; i < 4; i++) {
                assertEquals(200, post(kvass, "/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8,"
                        + " \"stream\": " + (i % 2 == 0) + "}").statusCode());
            }
            assertEquals(400, post(kvass, "/v1/load_lora_adapter", "{\"lora_name\": \"a\", \"lora_path\": \"/x\"}")
                    .statusCode()); // LoRA is not enabled: a failed load
            int port;
            try (ServerSocket free = new ServerSocket(0)) {
                port = free.getLocalPort();
            }
            Path config = Files.writeString(tmp.resolve("prometheus.yml"), """
                    global:
                      scrape_interval: 1s
                      evaluation_interval: 1s
                    rule_files: ["%s"]
                    scrape_configs:
                      - job_name: kvass
                        static_configs:
                          - targets: ["127.0.0.1:%d"]
                    """.formatted(RULES, node.httpPort()));
            server = new ProcessBuilder(prometheus.toString(), "--config.file=" + config,
                    "--storage.tsdb.path=" + tmp.resolve("data"), "--web.listen-address=127.0.0.1:" + port)
                    .redirectErrorStream(true).redirectOutput(tmp.resolve("prometheus.log").toFile()).start();
            URI prom = URI.create("http://127.0.0.1:" + port);
            await("Prometheus is ready", () -> get(prom, "/-/ready").statusCode() == 200, tmp);
            await("the kvass target is up", () -> api(prom, "/api/v1/targets").path("data").path("activeTargets")
                    .path(0).path("health").asText().equals("up"), tmp);
            await("vLLM's series are scraped", () -> query(prom, "vllm:gpu_cache_usage_perc").size() == 1
                    && query(prom, "vllm:iteration_tokens_total_count").size() == 1
                    && query(prom, "vllm:request_queue_time_seconds_count").path(0).path("value").path(1).asDouble() == 4,
                    tmp);
            // A second failed load after the first was scraped: the counter rises, the alert fires.
            Thread.sleep(2_000);
            assertEquals(400, post(kvass, "/v1/load_lora_adapter", "{\"lora_name\": \"a\", \"lora_path\": \"/x\"}")
                    .statusCode());
            await("KvassAdapterLoadFailures fires", () -> {
                for (JsonNode alert : api(prom, "/api/v1/alerts").path("data").path("alerts")) {
                    if (alert.path("labels").path("alertname").asText().equals("KvassAdapterLoadFailures")
                            && alert.path("state").asText().equals("firing")) {
                        return true;
                    }
                }
                return false;
            }, tmp);
            JsonNode groups = api(prom, "/api/v1/rules").path("data").path("groups");
            int rules = 0;
            for (JsonNode group : groups) {
                for (JsonNode rule : group.path("rules")) {
                    rules++;
                    assertEquals("ok", rule.path("health").asText(), rule.toString());
                    assertFalse(rule.path("lastEvaluation").asText().startsWith("0001"), "evaluated: " + rule);
                }
            }
            assertEquals(6, rules);
            // No alert but the one provoked: the server is up, its queue empty, its KV cache idle.
            for (JsonNode alert : api(prom, "/api/v1/alerts").path("data").path("alerts")) {
                assertEquals("KvassAdapterLoadFailures", alert.path("labels").path("alertname").asText(), alert.toString());
            }
            // Every query of the dashboard is valid PromQL that Prometheus evaluates.
            for (String q : dashboardQueries(JSON.readTree(DASHBOARD.toFile()))) {
                String concrete = q.replace("$model_name", ".*").replace("$instance", ".*")
                        .replace("$__rate_interval", "1m");
                JsonNode r = api(prom, "/api/v1/query?query=" + URLEncoder.encode(concrete, StandardCharsets.UTF_8));
                assertEquals("success", r.path("status").asText(), concrete + " -> " + r);
            }
            JsonNode ttft = query(prom, "histogram_quantile(0.99, sum by (le) (rate("
                    + "vllm:time_to_first_token_seconds_bucket[1m])))");
            assertEquals(1, ttft.size(), ttft.toString());
        } finally {
            if (server != null) {
                server.destroy();
                server.waitFor(30, TimeUnit.SECONDS);
            }
            node.shutdown().toCompletableFuture().get(60, TimeUnit.SECONDS);
            node.awaitTermination();
        }
    }

    private interface Check {
        boolean holds() throws Exception;
    }

    private static void await(String what, Check check, Path tmp) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        Exception last = null;
        while (System.nanoTime() < deadline) {
            try {
                if (check.holds()) {
                    return;
                }
            } catch (IOException e) {
                last = e;
            }
            Thread.sleep(250);
        }
        String log = Files.exists(tmp.resolve("prometheus.log")) ? Files.readString(tmp.resolve("prometheus.log")) : "";
        throw new AssertionError("timed out: " + what + (last == null ? "" : " (" + last + ")") + "\nPrometheus log:\n"
                + log.substring(Math.max(0, log.length() - 3000)));
    }

    private static HttpResponse<String> post(URI base, String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(base.resolve(path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> get(URI base, String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(base.resolve(path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private static JsonNode api(URI base, String path) throws Exception {
        return JSON.readTree(get(base, path).body());
    }

    private static JsonNode query(URI base, String promql) throws Exception {
        return api(base, "/api/v1/query?query=" + URLEncoder.encode(promql, StandardCharsets.UTF_8)).path("data")
                .path("result");
    }

}
