package io.kvass.bench.loadgen;

import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.ToIntFunction;

/**
 * A serving benchmark for OpenAI-compatible servers, after {@code vllm bench serve} (same option names,
 * metrics and JSON keys). For example, against {@code kvass serve}:
 *
 * <pre>
 * java -cp bench/target/classes:$(cat bench/target/classpath.txt) io.kvass.bench.loadgen.LoadGenerator \
 *     --base-url http://127.0.0.1:8000 --endpoint /v1/completions --num-prompts 200 --max-concurrency 8 \
 *     --dataset random --random-input-len 32 --random-output-len 64 --seed 0 --ignore-eos --result-file r.json
 * </pre>
 *
 * <p>Flow: resolve the model ({@code GET /v1/models} unless given); build the prompts (see
 * {@link RandomDataset}); send {@code --warmup-requests} different prompts one by one and stop unless
 * they succeed; then send all prompts, at the arrival times of {@link Arrivals} and at most
 * {@code --max-concurrency} in flight (a request waiting for a slot is sent when one frees, and its
 * clock starts then, as in vLLM); wait for every response; print the table; write the JSON.
 *
 * <p>On a machine of few cores shared with the server, run it with {@code -XX:TieredStopAtLevel=1
 * -XX:+UseSerialGC}: C2 compiling the client's hot paths during the first seconds takes a core from the
 * server, whose parallel kernels then wait for their descheduled thread at every matrix (measured on the
 * 2-core machine: 12-20 ms per token instead of 0.3 ms on stories260K for the first requests of a run).
 */
public final class LoadGenerator {
    private LoadGenerator() {
    }

    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (Options.UsageException e) {
            System.out.print(e.getMessage());
            return;
        } catch (IllegalArgumentException e) {
            System.err.println("LoadGenerator: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (Runtime.getRuntime().availableProcessors() <= 4 && ManagementFactory.getRuntimeMXBean().getInputArguments()
                .stream().noneMatch(a -> a.startsWith("-XX:TieredStopAtLevel"))) {
            System.err.println("note: few cores; consider java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC so that"
                    + " this JVM's JIT does not compete with the server (see LoadGenerator's javadoc)");
        }
        try {
            BenchmarkResult result = run(options, System.err);
            System.out.print(result.table());
            if (options.resultFile().isPresent()) {
                write(result, options.resultFile().get());
                System.err.println("wrote " + options.resultFile().get());
            }
            System.exit(result.completed > 0 ? 0 : 1);
        } catch (Exception e) {
            System.err.println("LoadGenerator: " + (e.getMessage() == null ? e : e.getMessage())
                    + (e instanceof java.net.ConnectException ? " (is the server up at " + options.baseUrl() + "?)" : ""));
            System.exit(1);
        }
    }

    static void write(BenchmarkResult result, Path file) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(file, OpenAiStreamClient.JSON.copy().enable(SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsString(result.toJson()) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Runs the whole benchmark; progress lines go to {@code log} unless {@code --quiet}. */
    public static BenchmarkResult run(Options options, PrintStream log) throws IOException, InterruptedException {
        PrintStream out = options.quiet() ? new PrintStream(PrintStream.nullOutputStream()) : log;
        String model = options.model().isPresent() ? options.model().get() : OpenAiStreamClient.firstModel(options);
        try (OpenAiStreamClient client = new OpenAiStreamClient(options, model)) {
            Prompts prompts = Prompts.of(options, client, out);
            List<BenchRequest> requests = prompts.make(options.numPrompts(), options.seed());
            // different prompts: a warm-up must not put the measured prompts in the prefix cache
            List<BenchRequest> warmups = prompts.make(options.warmupRequests(), options.seed() + 0x5EED);
            out.printf(Locale.ROOT, "model %s, %s, %d prompts (input %d, output %d, range ratio %.2f), "
                            + "max concurrency %s, request rate %s, burstiness %.2f%n",
                    model, options.endpoint(), requests.size(), options.randomInputLen(), options.randomOutputLen(),
                    options.randomRangeRatio(), options.maxConcurrency() > 0 ? options.maxConcurrency() : "unbounded",
                    Double.isInfinite(options.requestRate()) ? "inf" : options.requestRate(), options.burstiness());
            if (!warmups.isEmpty()) {
                // as many in flight as the run will have, all sent at once
                Semaphore slots = new Semaphore(options.maxConcurrency() > 0 ? options.maxConcurrency()
                        : warmups.size());
                List<CompletableFuture<RequestResult>> sent = new ArrayList<>();
                for (BenchRequest w : warmups) {
                    slots.acquire();
                    sent.add(client.send(w).whenComplete((r, e) -> slots.release()));
                }
                for (CompletableFuture<RequestResult> f : sent) {
                    RequestResult r = f.join();
                    if (!r.success()) {
                        throw new IOException("a warm-up request failed: " + r.error());
                    }
                    out.printf(Locale.ROOT, "warm-up request: %d output tokens in %.1f ms (TTFT %.1f ms)%n",
                            r.outputTokens(), r.e2eMs(), r.ttftMs());
                }
            }
            return measure(options, model, client, requests, out);
        }
    }

    static BenchmarkResult measure(Options options, String model, OpenAiStreamClient client,
                                   List<BenchRequest> requests, PrintStream out) throws InterruptedException {
        double[] offsets = Arrivals.offsets(requests.size(), options.requestRate(), options.burstiness(),
                options.seed());
        Semaphore slots = options.maxConcurrency() > 0 ? new Semaphore(options.maxConcurrency()) : null;
        AtomicInteger done = new AtomicInteger();
        int every = Math.max(1, requests.size() / 10);
        List<CompletableFuture<RequestResult>> futures = new ArrayList<>(requests.size());
        double loadStart = loadAverage();
        long cpuStart = processCpuNanos();
        long start = System.nanoTime();
        for (int i = 0; i < requests.size(); i++) {
            long due = start + (long) (offsets[i] * 1e9);
            for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
                LockSupport.parkNanos(wait);
            }
            if (slots != null) {
                slots.acquire();
            }
            CompletableFuture<RequestResult> f = client.send(requests.get(i)).whenComplete((r, e) -> {
                if (slots != null) {
                    slots.release();
                }
                int n = done.incrementAndGet();
                if (n % every == 0 || n == requests.size()) {
                    out.printf(Locale.ROOT, "%d/%d done, %.1f s%n", n, requests.size(),
                            (System.nanoTime() - start) / 1e9);
                }
            });
            futures.add(f);
        }
        CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new)).join();
        long end = System.nanoTime();
        List<RequestResult> results = futures.stream().map(CompletableFuture::join).toList();
        long cpu = processCpuNanos() - cpuStart;
        return new BenchmarkResult(options, model, results, start, end, loadStart, loadAverage(), cpu / 1e9);
    }

    static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    /** CPU time of this JVM (all threads), or 0 where the platform does not tell. */
    static long processCpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return Math.max(0, os.getProcessCpuTime());
        }
        return 0;
    }

    /** Makes prompts: token ids from a pool for completions, calibrated random words for chat. */
    record Prompts(Options o, int[] pool, ToIntFunction<String> counter) {
        static Prompts of(Options o, OpenAiStreamClient client, PrintStream out) throws IOException,
                InterruptedException {
            if (o.chat()) {
                return new Prompts(o, null, tokenCounter(client, out));
            }
            return new Prompts(o, o.randomVocabSize() > 0 ? RandomDataset.vocabulary(o.randomVocabSize())
                    : tokenPool(client, out), null);
        }

        List<BenchRequest> make(int n, long seed) {
            if (n == 0) {
                return List.of();
            }
            return o.chat()
                    ? RandomDataset.words(n, o.randomInputLen(), o.randomOutputLen(), o.randomRangeRatio(),
                            o.randomPrefixLen(), counter, seed)
                    : RandomDataset.tokenIds(n, o.randomInputLen(), o.randomOutputLen(), o.randomRangeRatio(),
                            o.randomPrefixLen(), o.randomPrefixGroups(), pool, seed);
        }
    }

    /** The distinct ids the server's tokenizer gives for a few thousand random words. */
    static int[] tokenPool(OpenAiStreamClient client, PrintStream out) throws IOException, InterruptedException {
        int[] ids;
        try {
            ids = client.tokenize(RandomDataset.words(new SplittableRandom(1), 4000));
        } catch (IOException e) {
            throw new IOException("could not get token ids from the server's /tokenize (" + e.getMessage()
                    + "); pass --random-vocab-size V", e);
        }
        TreeSet<Integer> distinct = new TreeSet<>();
        for (int id : ids) {
            distinct.add(id);
        }
        if (distinct.isEmpty()) {
            throw new IOException("/tokenize returned no tokens; pass --random-vocab-size V");
        }
        int[] pool = distinct.stream().mapToInt(Integer::intValue).toArray();
        out.printf("token pool: %d distinct ids from /tokenize of random words%n", pool.length);
        return pool;
    }
    /** Counts tokens with the server's /tokenize, or null (one token per word) when it has none. */
    static ToIntFunction<String> tokenCounter(OpenAiStreamClient client, PrintStream out) {
        try {
            client.tokenize("hello world");
        } catch (IOException | InterruptedException e) {
            out.println("no /tokenize (" + e.getMessage() + "): chat prompts take one word for one token");
            return null;
        }
        return text -> {
            try {
                return client.tokenize(text).length;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        };
    }
}
