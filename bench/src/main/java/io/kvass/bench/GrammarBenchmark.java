package io.kvass.bench;

import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.grammar.GrammarMatcher;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.grammar.TokenGrammar;
import io.kvass.worker.grammar.TokenVocabulary;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import io.kvass.worker.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Structured outputs (issue 17): schema compile time per vocabulary, the sampler's per-step mask cost at batch 1
 * and 64 (128k-token rows), and engine throughput with 0%, 50% and 100% constrained requests. One JSON line each.
 *
 * <pre>java ... io.kvass.bench.GrammarBenchmark FIXTURES_DIR</pre>
 */
public final class GrammarBenchmark {
    static final String PERSON = """
            {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 8},
             "age": {"type": "integer", "minimum": 0, "maximum": 120}, "email": {"type": "string", "maxLength": 10},
             "address": {"type": "object", "properties": {"street": {"type": "string", "maxLength": 8},
             "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["street", "zip"],
             "additionalProperties": false}}, "required": ["name", "age", "address"], "additionalProperties": false}""";
    static final String ORDER = """
            {"type": "object", "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3, "items":
             {"type": "object", "properties": {"sku": {"enum": ["A1", "B2", "C3"]}, "qty": {"type": "integer",
             "minimum": 1, "maximum": 5}, "price": {"type": "number", "minimum": 0, "exclusiveMaximum": 100}},
             "required": ["sku", "qty", "price"], "additionalProperties": false}}, "status": {"enum": ["open", "paid"]},
             "notes": {"type": "string", "maxLength": 200}}, "required": ["items", "status"], "additionalProperties": false}""";

    private GrammarBenchmark() {
    }

    public static void main(String[] args) {
        Path fixtures = Path.of(args[0]);
        for (String vocab : new String[] {"models/stories260K", "tokenizers/llama3", "tokenizers/qwen3"}) {
            compileTimes(fixtures.resolve(vocab), vocab);
        }
        maskCost(fixtures.resolve("tokenizers/llama3"));
        throughput(fixtures.resolve("models/stories260K"));
    }

    private static void compileTimes(Path dir, String name) {
        Tokenizer tokenizer = Tokenizer.load(dir);
        long t0 = System.nanoTime();
        TokenVocabulary vocab = TokenVocabulary.of(tokenizer, tokenizer.vocabSize());
        double vocabMs = (System.nanoTime() - t0) / 1e6;
        for (var schema : List.of(new String[] {"person", PERSON}, new String[] {"order", ORDER},
                new String[] {"json_object", null})) {
            double best = Double.MAX_VALUE, warmBest = Double.MAX_VALUE;
            int states = 0;
            for (int rep = 0; rep < 5; rep++) {
                GrammarCompiler compiler = new GrammarCompiler(vocab);
                GrammarSpec spec = schema[1] == null ? GrammarSpec.jsonObject() : GrammarSpec.jsonSchema(schema[1]);
                long a = System.nanoTime();
                TokenGrammar g = compiler.compile(spec);
                long b = System.nanoTime();
                states = g.warm(64);
                long c = System.nanoTime();
                best = Math.min(best, (b - a) / 1e6);
                warmBest = Math.min(warmBest, (c - b) / 1e6);
            }
            System.out.printf(Locale.ROOT, "{\"bench\":\"compile\",\"vocab\":\"%s\",\"vocab_size\":%d,\"vocab_build_ms\":%.1f,"
                    + "\"schema\":\"%s\",\"compile_ms\":%.2f,\"first_%d_masks_ms\":%.1f}%n", name, vocab.size(), vocabMs,
                    schema[0], best, states, warmBest);
        }
    }

    /** The CPU sampler on [batch, 128256] logits, unconstrained vs constrained (masks cached, as in steady state). */
    private static void maskCost(Path llama3) {
        Tokenizer tokenizer = Tokenizer.load(llama3);
        int vocab = 128256;
        GrammarCompiler compiler = new GrammarCompiler(TokenVocabulary.of(tokenizer, vocab));
        TokenGrammar grammar = compiler.compile(GrammarSpec.jsonSchema(ORDER));
        int[] eos = tokenizer.eosTokenIds().stream().mapToInt(Integer::intValue).toArray();
        SplittableRandom random = new SplittableRandom(1);
        for (int pass = 0; pass < 2; pass++) // the first pass warms the JIT for both kinds of rows
        for (int batch : new int[] {1, 64}) {
            float[] logits = new float[batch * vocab];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = (float) random.nextGaussian();
            }
            for (boolean constrained : new boolean[] {false, true}) {
                Sampler sampler = Sampler.cpu();
                List<Long> times = new ArrayList<>();
                for (int rep = 0; rep < 80; rep++) {
                    List<SequenceSamplingState> states = new ArrayList<>();
                    for (int s = 0; s < batch; s++) {
                        SamplingParams p = SamplingParams.builder().temperature(0f).maxTokens(1000)
                                .grammar(constrained ? Optional.of(grammar.spec()) : Optional.empty()).build();
                        SequenceSamplingState st = SequenceSamplingState.create(p, new int[] {1}, eos);
                        if (constrained) {
                            GrammarMatcher m = grammar.matcher();
                            // A state inside a free string: the widest mask, the most work per row.
                            for (int t : tokenizer.encode("{\"items\": [{\"sku\": \"A1\", \"qty\": 2, \"price\": 3}], "
                                    + "\"status\": \"open\", \"notes\": \"x", false)) {
                                m.accept(t);
                            }
                            st.withGrammar(m, new int[0]);
                        }
                        states.add(st);
                    }
                    long a = System.nanoTime();
                    sampler.sampleBatch(logits, vocab, states);
                    long b = System.nanoTime();
                    if (rep >= 10) {
                        times.add(b - a);
                    }
                }
                if (pass == 1) System.out.printf(Locale.ROOT, "{\"bench\":\"cpu_sampler_step\",\"vocab\":%d,\"batch\":%d,"
                        + "\"constrained\":%b,\"median_ms_per_step\":%.3f}%n", vocab, batch, constrained,
                        times.stream().sorted().toList().get(times.size() / 2) / 1e6);
            }
        }
    }

    /** 64 requests on stories260K's CPU engine, a share of them constrained to ORDER; output tokens per second. */
    private static void throughput(Path stories) {
        try (ModelReplica replica = ModelReplica.load(new ReplicaOptions(stories, ReplicaOptions.Device.CPU, 16, 256L << 20,
                512, 64, Runtime.getRuntime().availableProcessors()))) {
            SchedulerConfig config = new SchedulerConfig(64, 4096, replica.maxModelLen(), SchedulingPolicy.FCFS, false);
            double[] best = {Double.MAX_VALUE, Double.MAX_VALUE, Double.MAX_VALUE};
            int[] produced = new int[3];
            for (int rep = 0; rep < 4; rep++) { // interleaved, best of the last three: the machine is shared
                for (int k = 0; k < 3; k++) {
                    int percent = k * 50;
                    LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(), config);
                    int[] prompt = replica.tokenizer().encode("Once upon a time", true);
                    List<Request> requests = new ArrayList<>();
                    for (int i = 0; i < 64; i++) {
                        boolean constrained = i * 100 < percent * 64;
                        SamplingParams p = SamplingParams.builder().temperature(1f).seed(i).maxTokens(96).ignoreEos(!constrained)
                                .grammar(constrained ? Optional.of(GrammarSpec.jsonSchema(ORDER)) : Optional.empty()).build();
                        requests.add(Request.of("r" + i, prompt, p));
                    }
                    long a = System.nanoTime();
                    int tokens = engine.generate(requests).stream().mapToInt(o -> o.tokens().size()).sum();
                    double seconds = (System.nanoTime() - a) / 1e9;
                    if (rep > 0) {
                        best[k] = Math.min(best[k], seconds);
                        produced[k] = tokens;
                    }
                }
            }
            for (int k = 0; k < 3; k++) {
                System.out.printf(Locale.ROOT, "{\"bench\":\"engine_throughput\",\"model\":\"stories260K cpu\","
                        + "\"requests\":64,\"constrained_percent\":%d,\"output_tokens\":%d,\"best_seconds\":%.3f,"
                        + "\"output_tokens_per_s\":%.1f}%n", k * 50, produced[k], best[k], produced[k] / best[k]);
            }
        }
    }
}
