package io.kvass.bench.loadgen;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The command line of {@link LoadGenerator}, with {@code vllm bench serve}'s names and defaults where
 * they exist. Parse with {@link #parse(String...)}; build in code with {@link #builder()}.
 */
public record Options(
        String baseUrl,
        String endpoint,
        Optional<String> model,
        int numPrompts,
        int maxConcurrency,
        double requestRate,
        double burstiness,
        String dataset,
        int randomInputLen,
        int randomOutputLen,
        double randomRangeRatio,
        int randomPrefixLen,
        int randomPrefixGroups,
        int randomVocabSize,
        long seed,
        boolean ignoreEos,
        Optional<Double> temperature,
        Optional<String> apiKey,
        Optional<Path> resultFile,
        boolean saveDetailed,
        double[] percentiles,
        int warmupRequests,
        double timeoutSeconds,
        boolean quiet) {

    public static final String USAGE = """
            usage: LoadGenerator [options]
              --base-url URL               server (default http://127.0.0.1:8000)
              --endpoint PATH              /v1/completions (token-id prompts) | /v1/chat/completions (random words)
              --model NAME                 model name to send (default: the first of GET /v1/models)
              --num-prompts N              requests to send (default 100)
              --max-concurrency C          at most C requests in flight (default: unbounded)
              --request-rate R             requests/s, Poisson/gamma arrivals (default inf: all at once)
              --burstiness F               gamma shape of the gaps: 1 = Poisson, <1 burstier (default 1.0)
              --dataset random             the only dataset (random prompts)
              --random-input-len I         prompt tokens (default 1024)
              --random-output-len O        max_tokens (default 128)
              --random-range-ratio X       lengths uniform in [L*(1-X), L*(1+X)] (default 0.0)
              --random-prefix-len P        a random prefix of P tokens shared by all prompts (default 0)
              --random-prefix-groups K     K distinct shared prefixes (tenants), one drawn per prompt (default 1)
              --random-vocab-size V        draw ids from [0, V) (default: ids the server's /tokenize
                                           gives for random words)
              --seed S                     seed of prompts, lengths and arrivals (default 0)
              --ignore-eos                 send ignore_eos=true so outputs are exactly max_tokens long
              --temperature T              sampling temperature (default 0.0, greedy)
              --api-key K                  Authorization: Bearer K (default: $OPENAI_API_KEY if set)
              --result-file FILE           write the result as JSON
              --save-detailed              also write per-request lengths, TTFTs, ITLs and errors
              --metric-percentiles LIST    percentiles to report (default 50,90,99)
              --warmup-requests N          requests sent (and checked) before the run, not measured (default 1)
              --request-timeout S          seconds per request (default 600)
              --quiet                      no progress lines
            """;

    public Options {
        if (!endpoint.equals("/v1/completions") && !endpoint.equals("/v1/chat/completions")) {
            throw new IllegalArgumentException("--endpoint must be /v1/completions or /v1/chat/completions, got "
                    + endpoint);
        }
        if (!dataset.equals("random")) {
            throw new IllegalArgumentException("--dataset: only 'random' is supported, got " + dataset);
        }
        positive("--num-prompts", numPrompts);
        positive("--random-input-len", randomInputLen);
        positive("--random-output-len", randomOutputLen);
        if (maxConcurrency < 0) {
            throw new IllegalArgumentException("--max-concurrency must be > 0");
        }
        if (!(requestRate > 0)) {
            throw new IllegalArgumentException("--request-rate must be > 0 or inf, got " + requestRate);
        }
        if (!(burstiness > 0)) {
            throw new IllegalArgumentException("--burstiness must be > 0, got " + burstiness);
        }
        if (randomRangeRatio < 0 || randomRangeRatio >= 1) {
            throw new IllegalArgumentException("--random-range-ratio must be in [0, 1), got " + randomRangeRatio);
        }
        if (randomPrefixLen < 0 || randomPrefixGroups < 1 || randomVocabSize < 0 || warmupRequests < 0) {
            throw new IllegalArgumentException("--random-prefix-len, --random-vocab-size, --warmup-requests must be >= 0");
        }
        for (double p : percentiles) {
            if (p < 0 || p > 100) {
                throw new IllegalArgumentException("--metric-percentiles must be in [0, 100], got " + p);
            }
        }
        baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException(name + " must be > 0, got " + v);
        }
    }

    public boolean chat() {
        return endpoint.equals("/v1/chat/completions");
    }

    public static Options parse(String... args) {
        Builder b = builder();
        String envKey = System.getenv("OPENAI_API_KEY");
        if (envKey != null && !envKey.isBlank()) {
            b.apiKey = Optional.of(envKey);
        }
        List<String> list = new ArrayList<>();
        for (String a : args) {
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                list.add(a.substring(0, eq));
                list.add(a.substring(eq + 1));
            } else {
                list.add(a);
            }
        }
        for (int i = 0; i < list.size(); i++) {
            String flag = list.get(i);
            switch (flag) {
                case "--ignore-eos" -> { b.ignoreEos = true; continue; }
                case "--save-detailed" -> { b.saveDetailed = true; continue; }
                case "--quiet" -> { b.quiet = true; continue; }
                case "-h", "--help" -> throw new UsageException(USAGE);
                default -> { }
            }
            if (!flag.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + flag);
            }
            if (i + 1 >= list.size()) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String v = list.get(++i);
            switch (flag) {
                case "--base-url" -> b.baseUrl = v;
                case "--endpoint" -> b.endpoint = v;
                case "--model" -> b.model = Optional.of(v);
                case "--num-prompts" -> b.numPrompts = Integer.parseInt(v);
                case "--max-concurrency" -> b.maxConcurrency = Integer.parseInt(v);
                case "--request-rate" -> b.requestRate = v.equalsIgnoreCase("inf") ? Double.POSITIVE_INFINITY
                        : Double.parseDouble(v);
                case "--burstiness" -> b.burstiness = Double.parseDouble(v);
                case "--dataset", "--dataset-name" -> b.dataset = v;
                case "--random-input-len" -> b.randomInputLen = Integer.parseInt(v);
                case "--random-output-len" -> b.randomOutputLen = Integer.parseInt(v);
                case "--random-range-ratio" -> b.randomRangeRatio = Double.parseDouble(v);
                case "--random-prefix-len" -> b.randomPrefixLen = Integer.parseInt(v);
                case "--random-prefix-groups" -> b.randomPrefixGroups = Integer.parseInt(v);
                case "--random-vocab-size" -> b.randomVocabSize = Integer.parseInt(v);
                case "--seed" -> b.seed = Long.parseLong(v);
                case "--temperature" -> b.temperature = Optional.of(Double.parseDouble(v));
                case "--api-key" -> b.apiKey = Optional.of(v);
                case "--result-file" -> b.resultFile = Optional.of(Path.of(v));
                case "--metric-percentiles" -> b.percentiles = parsePercentiles(v);
                case "--warmup-requests" -> b.warmupRequests = Integer.parseInt(v);
                case "--request-timeout" -> b.timeoutSeconds = Double.parseDouble(v);
                default -> throw new IllegalArgumentException("unknown option: " + flag + "\n" + USAGE);
            }
        }
        return b.build();
    }

    static double[] parsePercentiles(String v) {
        String[] parts = v.split(",");
        double[] out = new double[parts.length];
        for (int i = 0; i < parts.length; i++) {
            out[i] = Double.parseDouble(parts[i].trim());
        }
        return out;
    }

    /** Thrown for --help: the message is the usage text. */
    public static final class UsageException extends RuntimeException {
        UsageException(String usage) {
            super(usage);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    public static final class Builder {
        public String baseUrl = "http://127.0.0.1:8000";
        public String endpoint = "/v1/completions";
        public Optional<String> model = Optional.empty();
        public int numPrompts = 100;
        public int maxConcurrency = 0;
        public double requestRate = Double.POSITIVE_INFINITY;
        public double burstiness = 1.0;
        public String dataset = "random";
        public int randomInputLen = 1024;
        public int randomOutputLen = 128;
        public double randomRangeRatio = 0.0;
        public int randomPrefixLen = 0;
        public int randomPrefixGroups = 1;
        public int randomVocabSize = 0;
        public long seed = 0;
        public boolean ignoreEos;
        public Optional<Double> temperature = Optional.of(0.0);
        public Optional<String> apiKey = Optional.empty();
        public Optional<Path> resultFile = Optional.empty();
        public boolean saveDetailed;
        public double[] percentiles = {50, 90, 99};
        public int warmupRequests = 1;
        public double timeoutSeconds = 600;
        public boolean quiet;

        public Options build() {
            return new Options(baseUrl, endpoint, model, numPrompts, maxConcurrency, requestRate, burstiness, dataset,
                    randomInputLen, randomOutputLen, randomRangeRatio, randomPrefixLen, randomPrefixGroups, randomVocabSize, seed,
                    ignoreEos, temperature, apiKey, resultFile, saveDetailed, percentiles.clone(), warmupRequests,
                    timeoutSeconds, quiet);
        }
    }
}
