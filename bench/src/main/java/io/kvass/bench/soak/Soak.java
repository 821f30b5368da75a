package io.kvass.bench.soak;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A long run of mixed traffic against a real {@code kvass serve} (the launcher, its own JVM), to show
 * that nothing accumulates: resident memory, live heap after a full GC, threads, file descriptors and
 * KV blocks are sampled after a warm-up and at the end, with the server idle both times.
 *
 * <p>Traffic, per worker, drawn from a seeded mix: streamed and whole completions and chats, on the base
 * model and on LoRA adapters; streams the client drops after a few events and whole requests it drops
 * before the answer (aborts); adapters loaded and unloaded at runtime; malformed requests. Any 5xx or
 * failed connection is counted and reported.
 *
 * <pre>java -cp bench/target/classes:$(cat bench/target/classpath.txt) io.kvass.bench.soak.Soak \
 *     minutes=30 concurrency=4 model=../shared/fixtures/models/stories260K</pre>
 */
public final class Soak {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] PROMPTS = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a big",
        "Tom and his mom went to the park and"};

    private final URI base;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();
    private final Path adapterRoot;
    private final Map<String, AtomicLong> outcomes = new ConcurrentHashMap<>();
    private final AtomicLong requests = new AtomicLong();

    private Soak(URI base, Path adapterRoot) {
        this.base = base;
        this.adapterRoot = adapterRoot;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new java.util.HashMap<>();
        for (String arg : argv) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        double minutes = Double.parseDouble(a.getOrDefault("minutes", "30"));
        int concurrency = Integer.parseInt(a.getOrDefault("concurrency", "4"));
        int port = Integer.parseInt(a.getOrDefault("port", "8011"));
        double warmupMinutes = Double.parseDouble(a.getOrDefault("warmup", "1"));
        Path model = Path.of(a.getOrDefault("model", "../shared/fixtures/models/stories260K")).toAbsolutePath();
        Path work = Files.createTempDirectory("kvass-soak");
        Path root = Files.createDirectories(work.resolve("adapters"));
        JsonNode config = JSON.readTree(model.resolve("config.json").toFile());
        int hidden = config.path("hidden_size").asInt();
        int kvDim = config.path("num_key_value_heads").asInt() * hidden / config.path("num_attention_heads").asInt();
        SoakAdapter.write(root.resolve("static"), config.path("num_hidden_layers").asInt(), hidden, kvDim, 1);
        SoakAdapter.write(root.resolve("rt"), config.path("num_hidden_layers").asInt(), hidden, kvDim, 2);
        Path log = work.resolve("server.log");
        List<String> cmd = new ArrayList<>(List.of("bin/kvass", "serve", "--model", model.toString(), "--host",
                "127.0.0.1", "--port", Integer.toString(port), "--threads", "2", "--kv-cache-memory", "32M",
                "--max-num-seqs", "32", "--enable-lora", "--lora-modules", "ada=" + root.resolve("static"),
                "--lora-allowed-roots", root.toString(), "--max-loras", "2", "--max-lora-rank", "8"));
        System.out.println("server: " + String.join(" ", cmd) + "\nlog: " + log);
        Process server = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            Soak soak = new Soak(URI.create("http://127.0.0.1:" + port), root);
            soak.awaitHealthy(Duration.ofMinutes(5));
            long pid = soak.javaPid(server);
            ProcessProbe probe = new ProcessProbe(pid);
            System.out.println("server pid " + pid + "; warm-up " + warmupMinutes + " min");
            soak.run(concurrency, Duration.ofSeconds((long) (warmupMinutes * 60)), 7);
            soak.awaitIdle();
            ProcessProbe.Sample start = probe.sample();
            JsonNode kvStart = soak.replica();
            Instant t0 = Instant.now();
            System.out.println("start " + Instant.now() + ": " + start + " kv " + kvStart);
            long total = (long) (minutes * 60);
            long done = 0;
            long report = Long.parseLong(a.getOrDefault("report-seconds", "300"));
            while (done < total) {
                long chunk = Math.min(report, total - done);
                soak.run(concurrency, Duration.ofSeconds(chunk), 1000 + done);
                done += chunk;
                System.out.printf("%s after %d s: %d requests %s rss %d KiB%n", Instant.now(), done, soak.requests.get(),
                        soak.outcomes, rss(pid));
            }
            soak.awaitIdle();
            ProcessProbe.Sample end = probe.sample();
            JsonNode kvEnd = soak.replica();
            System.out.println("end " + Instant.now() + ": " + end + " kv " + kvEnd);
            System.out.printf("%n| | start | end |%n|---|---|---|%n");
            System.out.printf("| RSS | %.1f MiB | %.1f MiB |%n", start.rssKib() / 1024.0, end.rssKib() / 1024.0);
            System.out.printf("| live heap after GC | %.1f MiB | %.1f MiB |%n", start.liveHeapKib() / 1024.0,
                    end.liveHeapKib() / 1024.0);
            System.out.printf("| threads | %d | %d |%n", start.threads(), end.threads());
            System.out.printf("| file descriptors | %d | %d |%n", start.fds(), end.fds());
            System.out.printf("| KV blocks free / total | %d / %d | %d / %d |%n", kvStart.path("num_free_kv_blocks").asInt(),
                    kvStart.path("num_kv_blocks").asInt(), kvEnd.path("num_free_kv_blocks").asInt(),
                    kvEnd.path("num_kv_blocks").asInt());
            System.out.printf("%nwall %s, %d requests, outcomes %s%n", Duration.between(t0, Instant.now()),
                    soak.requests.get(), soak.outcomes);
            System.out.println("\nlargest classes on the heap at the end (jcmd GC.class_histogram):");
            probe.histogram(25).forEach(System.out::println);
        } finally {
            server.destroy();
            server.waitFor(60, TimeUnit.SECONDS);
        }
    }

    private static long rss(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException e) {
            // gone
        }
        return -1;
    }

    /** bin/kvass execs java, so the launcher's pid is the JVM's. */
    private long javaPid(Process launcher) {
        return launcher.pid();
    }

    private void awaitHealthy(Duration limit) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                if (http.send(HttpRequest.newBuilder(base.resolve("/health")).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    return;
                }
            } catch (IOException e) {
                // not up yet
            }
            Thread.sleep(500);
        }
        throw new IllegalStateException("the server did not become healthy");
    }

    /** Waits until nothing runs or waits (aborted requests' blocks are freed when the engine sees the abort). */
    private void awaitIdle() throws Exception {
        for (int i = 0; i < 600; i++) {
            JsonNode r = replica();
            if (r.path("num_requests_running").asInt() == 0 && r.path("num_requests_waiting").asInt() == 0) {
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("the server did not go idle: " + replica());
    }

    private JsonNode replica() throws Exception {
        return JSON.readTree(http.send(HttpRequest.newBuilder(base.resolve("/admin/replicas")).build(),
                HttpResponse.BodyHandlers.ofString()).body()).path("replicas").get(0);
    }

    private void run(int concurrency, Duration duration, long seed) throws InterruptedException {
        long deadline = System.nanoTime() + duration.toNanos();
        ExecutorService pool = Executors.newFixedThreadPool(concurrency);
        for (int w = 0; w < concurrency; w++) {
            Random random = new Random(seed * 31 + w);
            int worker = w;
            pool.execute(() -> {
                while (System.nanoTime() < deadline) {
                    String outcome;
                    try {
                        outcome = one(random, worker);
                    } catch (Exception e) {
                        outcome = "client-error:" + e.getClass().getSimpleName();
                    }
                    requests.incrementAndGet();
                    outcomes.computeIfAbsent(outcome, k -> new AtomicLong()).incrementAndGet();
                }
            });
        }
        pool.shutdown();
        if (!pool.awaitTermination(duration.toSeconds() + 300, TimeUnit.SECONDS)) {
            throw new IllegalStateException("workers did not stop");
        }
    }

    private String one(Random random, int worker) throws Exception {
        String prompt = PROMPTS[random.nextInt(PROMPTS.length)];
        String model = random.nextInt(4) == 0 ? "ada" : "stories260K";
        int maxTokens = 8 + random.nextInt(56);
        int kind = random.nextInt(100);
        if (kind < 30) {
            return status(post("/v1/completions", Map.of("model", model, "prompt", prompt, "max_tokens", maxTokens,
                    "stream", true, "temperature", 0.8)));
        } else if (kind < 50) {
            return status(post("/v1/chat/completions", Map.of("model", model, "messages", List.of(Map.of("role", "user",
                    "content", prompt)), "max_tokens", maxTokens, "n", 1 + random.nextInt(2))));
        } else if (kind < 65) {
            return streamThenDrop(model, prompt, 1 + random.nextInt(6));
        } else if (kind < 75) {
            return dropBeforeAnswer(model, prompt, 20 + random.nextInt(200));
        } else if (kind < 85) {
            return adapterCycle(worker, random);
        } else if (kind < 92) {
            return status(post("/v1/completions", Map.of("model", model, "prompt", List.of(1, 2, 3, 4), "max_tokens",
                    maxTokens, "logprobs", 2, "seed", random.nextInt())));
        } else {
            String[] bad = {"{\"prompt\": [18446744073709552019]}", "{\"prompt\": \"x\", \"n\": 0}", "not json",
                "{\"model\": \"nope\", \"prompt\": \"x\"}"};
            int code = send("/v1/completions", bad[random.nextInt(bad.length)]);
            return code >= 400 && code < 500 ? "4xx-expected" : "UNEXPECTED-" + code;
        }
    }

    /** Loads a runtime adapter under a worker-specific name, uses it once, unloads it. */
    private String adapterCycle(int worker, Random random) throws Exception {
        String name = "rt-" + worker;
        int loaded = send("/v1/load_lora_adapter", JSON.writeValueAsString(Map.of("lora_name", name, "lora_path",
                adapterRoot.resolve("rt").toString())));
        if (loaded != 200 && loaded != 400) { // 400: still loaded from an earlier cycle
            return "load-" + loaded;
        }
        int used = post("/v1/completions", Map.of("model", name, "prompt", "Once", "max_tokens", 4 + random.nextInt(8)));
        int unloaded = send("/v1/unload_lora_adapter", JSON.writeValueAsString(Map.of("lora_name", name)));
        return used == 200 && unloaded == 200 ? "adapter-cycle-ok" : "adapter-cycle-" + used + "-" + unloaded;
    }

    private int post(String path, Map<String, ?> body) throws Exception {
        return send(path, JSON.writeValueAsString(body));
    }

    private int send(String path, String body) throws Exception {
        HttpResponse<Void> r = http.send(HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofMinutes(5))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.discarding());
        return r.statusCode();
    }

    private static String status(int code) {
        return code == 200 ? "ok" : (code >= 500 ? "UNEXPECTED-" : "status-") + code;
    }

    /** A stream the client closes after {@code events} events: the server must abort it and free its blocks. */
    private String streamThenDrop(String model, String prompt, int events) throws Exception {
        String body = JSON.writeValueAsString(Map.of("model", model, "prompt", prompt, "max_tokens", 200,
                "ignore_eos", true, "stream", true));
        try (Socket s = new Socket(base.getHost(), base.getPort())) {
            s.setSoTimeout(60_000);
            request(s.getOutputStream(), body);
            InputStream in = s.getInputStream();
            byte[] buf = new byte[4096];
            int seen = 0;
            StringBuilder head = new StringBuilder();
            while (seen < events) {
                int n = in.read(buf);
                if (n < 0) {
                    return "stream-ended-early";
                }
                String chunk = new String(buf, 0, n, StandardCharsets.UTF_8);
                if (head.length() < 16) {
                    head.append(chunk);
                }
                seen += chunk.split("data: ", -1).length - 1;
            }
            return head.toString().startsWith("HTTP/1.1 200") ? "stream-aborted" : "UNEXPECTED-stream " + head.substring(0, 12);
        }
    }

    /** A whole (non-streamed) request the client gives up on before the answer. */
    private String dropBeforeAnswer(String model, String prompt, int millis) throws Exception {
        String body = JSON.writeValueAsString(Map.of("model", model, "prompt", prompt, "max_tokens", 200,
                "ignore_eos", true));
        try (Socket s = new Socket(base.getHost(), base.getPort())) {
            request(s.getOutputStream(), body);
            Thread.sleep(millis);
        }
        return "dropped";
    }

    private void request(OutputStream out, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
    }
}
