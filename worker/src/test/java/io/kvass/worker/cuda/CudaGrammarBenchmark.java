package io.kvass.worker.cuda;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import io.kvass.worker.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Structured outputs on the GPU: decode steps ({@code forwardAndSample}, graphs, device sampling) of the
 * Llama-3-8B-shaped random model at context 1,024, batch 1 and 64, with 0%, 50% and 100% of the rows constrained
 * to a JSON schema over the Llama 3 tokenizer (masks looked up on the host, applied by apply_token_bitmask).
 * Usage: {@code CudaGrammarBenchmark LLAMA3_TOKENIZER_DIR}.
 */
public final class CudaGrammarBenchmark {
    private static final String SCHEMA = """
            {"type": "object", "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3, "items":
             {"type": "object", "properties": {"sku": {"enum": ["A1", "B2", "C3"]}, "qty": {"type": "integer",
             "minimum": 1, "maximum": 5}, "price": {"type": "number", "minimum": 0, "exclusiveMaximum": 100}},
             "required": ["sku", "qty", "price"], "additionalProperties": false}}, "notes": {"type": "string",
             "maxLength": 500}}, "required": ["items", "notes"], "additionalProperties": false}""";

    private CudaGrammarBenchmark() {
    }

    public static void main(String[] args) {
        Tokenizer tokenizer = Tokenizer.load(Path.of(args[0]));
        int context = 1024, warmup = 8, measured = 40, blockSize = 16, maxBatch = 64;
        int blocksPerSeq = (context + warmup + measured + 2 * 16 + blockSize) / blockSize;
        CudaOptions options = new CudaOptions(0, 0.9, blockSize, 4096, maxBatch, 4096, maxBatch * blocksPerSeq + 8, true,
                io.kvass.worker.lora.LoraCapacity.NONE);
        try (CudaBackend backend = CudaBackend.random(CudaBenchmark.LLAMA3_8B, options, 1234)) {
            backend.randomizeKvCache(99);
            GrammarCompiler grammars = GrammarCompiler.of(tokenizer, CudaBenchmark.LLAMA3_8B.vocabSize());
            long t0 = System.nanoTime();
            var grammar = grammars.compile(GrammarSpec.jsonSchema(SCHEMA));
            double compileMs = (System.nanoTime() - t0) / 1e6;
            System.out.printf(Locale.ROOT, "[grammar] schema compiled in %.1f ms (vocabulary %d tokens)%n", compileMs,
                    grammar.vocabSize());
            for (int pass = 0; pass < 2; pass++) {
                for (int batch : new int[] {1, 64}) {
                    for (int percent : batch == 1 ? new int[] {0, 100} : new int[] {0, 50, 100}) {
                        double ms = stepMs(backend, grammars, batch, percent, context + pass * 64, blocksPerSeq, warmup,
                                measured);
                        if (pass == 1) {
                            System.out.printf(Locale.ROOT, "[grammar] batch %d, %d%% constrained: %.3f ms/step median "
                                    + "(%.0f tok/s)%n", batch, percent, ms, batch * 1000 / ms);
                        }
                    }
                }
            }
        }
    }

    private static double stepMs(CudaBackend backend, GrammarCompiler grammars, int batch, int percent, int context,
                                 int blocksPerSeq, int warmup, int measured) {
        List<SequenceSamplingState> states = new ArrayList<>();
        for (int s = 0; s < batch; s++) {
            boolean constrained = s * 100 < percent * batch;
            SamplingParams p = SamplingParams.builder().temperature(0f).maxTokens(4096)
                    .grammar(constrained ? Optional.of(GrammarSpec.jsonSchema(SCHEMA)) : Optional.empty()).build();
            SequenceSamplingState state = SequenceSamplingState.create(p, new int[] {1}, new int[] {128001, 128009});
            if (constrained) {
                state.withGrammar(grammars.compile(p.grammar().get()).matcher(), new int[0]);
            }
            states.add(state);
        }
        int[] tokens = new int[batch];
        Arrays.fill(tokens, 42);
        double[] times = new double[measured];
        Sampler sampler = Sampler.cpu();
        for (int step = 0; step < warmup + measured; step++) {
            List<SequenceForward> seqs = new ArrayList<>(batch);
            for (int s = 0; s < batch; s++) {
                int[] table = new int[blocksPerSeq];
                for (int b = 0; b < blocksPerSeq; b++) {
                    table[b] = s * blocksPerSeq + b;
                }
                seqs.add(new SequenceForward(new int[] {tokens[s]}, context + step - 64, table, LogitsMode.LAST));
            }
            long start = System.nanoTime();
            var out = backend.forwardAndSample(seqs, states, sampler);
            long end = System.nanoTime();
            for (int s = 0; s < batch; s++) {
                tokens[s] = out.get(s).tokenId();
            }
            if (step >= warmup) {
                times[step - warmup] = (end - start) / 1e6;
            }
        }
        Arrays.sort(times);
        return times[times.length / 2];
    }
}
