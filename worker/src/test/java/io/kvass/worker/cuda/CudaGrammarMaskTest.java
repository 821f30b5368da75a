package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.grammar.GrammarCompiler;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Structured outputs on the GPU (sample.cu's apply_token_bitmask before sample_rows): constrained and
 * unconstrained greedy rows in one batch, every step, give exactly the tokens the CPU sampler (with the
 * grammar's mask as a logits processor) picks from the same step's logits; the constrained rows end in
 * documents of their schema.
 */
@Tag("gpu")
class CudaGrammarMaskTest {
    private static final String SCHEMA = """
            {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
             "n": {"type": "integer", "minimum": -20, "maximum": 20}, "ok": {"type": "boolean"}},
             "required": ["name", "n", "ok"], "additionalProperties": false}""";

    @Test
    void deviceMasksGiveTheCpuSamplersGreedyTokens() throws Exception {
        Gpu.assumePresent();
        Tokenizer tokenizer = Tokenizer.load(Fixtures.stories260K());
        try (LoadedModel model = LoadedModel.load(Fixtures.stories260K());
             CudaBackend backend = CudaBackendReferenceTest.open(model, 64, true)) {
            GrammarCompiler grammars = GrammarCompiler.of(tokenizer, model.config().vocabSize());
            int[] eos = tokenizer.eosTokenIds().stream().mapToInt(Integer::intValue).toArray();
            String[] prompts = {"Once upon a time", "The dog", "Lily", "One day", "Tom and Sue", "The sun"};
            int n = prompts.length;
            List<SequenceSamplingState> device = new ArrayList<>(), host = new ArrayList<>();
            List<int[]> tables = new ArrayList<>();
            List<List<Integer>> tokens = new ArrayList<>();
            for (int s = 0; s < n; s++) {
                boolean constrained = s % 2 == 0;
                SamplingParams p = SamplingParams.builder().temperature(0f).maxTokens(100)
                        .grammar(constrained ? Optional.of(GrammarSpec.jsonSchema(SCHEMA)) : Optional.empty()).build();
                int[] prompt = tokenizer.encode(prompts[s], true);
                SequenceSamplingState d = SequenceSamplingState.create(p, prompt, eos);
                SequenceSamplingState h = SequenceSamplingState.create(p, prompt, eos);
                if (constrained) {
                    d.withGrammar(grammars.compile(p.grammar().get()).matcher(), new int[0]);
                    h.withGrammar(grammars.compile(p.grammar().get()).matcher(), new int[0]);
                    assertTrue(CudaBackend.samplesOnDevice(d), "a constrained greedy row samples on the device");
                }
                device.add(d);
                host.add(h);
                int[] table = new int[8];
                for (int b = 0; b < 8; b++) {
                    table[b] = s * 8 + b;
                }
                tables.add(table);
                List<Integer> t = new ArrayList<>();
                for (int id : prompt) {
                    t.add(id);
                }
                tokens.add(t);
            }
            boolean[] done = new boolean[n];
            int[] computed = new int[n];
            int steps = 0, constrainedTokens = 0;
            while (steps < 100) {
                List<SequenceForward> batch = new ArrayList<>();
                List<Integer> live = new ArrayList<>();
                for (int s = 0; s < n; s++) {
                    if (!done[s]) {
                        List<Integer> t = tokens.get(s);
                        int[] fresh = t.subList(computed[s], t.size()).stream().mapToInt(Integer::intValue).toArray();
                        batch.add(new SequenceForward(fresh, computed[s], tables.get(s), LogitsMode.LAST, 0));
                        live.add(s);
                    }
                }
                if (batch.isEmpty()) {
                    break;
                }
                // The same step twice: logits to the host for the CPU sampler, then masks and sampling on the GPU.
                List<float[][]> logits = backend.forward(batch);
                List<SequenceSamplingState> liveDevice = live.stream().map(device::get).toList();
                List<SampledToken> onDevice = backend.forwardAndSample(batch, liveDevice, Sampler.cpu());
                for (int i = 0; i < live.size(); i++) {
                    int s = live.get(i);
                    int cpu = Sampler.cpu().sample(logits.get(i)[0], host.get(s)).tokenId();
                    assertEquals(cpu, onDevice.get(i).tokenId(), "sequence " + s + " step " + steps);
                    computed[s] = tokens.get(s).size();
                    tokens.get(s).add(cpu);
                    if (s % 2 == 0) {
                        constrainedTokens++;
                    }
                    if (java.util.Arrays.stream(eos).anyMatch(e -> e == cpu)) {
                        done[s] = true;
                    }
                }
                steps++;
            }
            ObjectMapper json = new ObjectMapper();
            for (int s = 0; s < n; s += 2) {
                List<Integer> t = tokens.get(s);
                int promptLength = tokenizer.encode(prompts[s], true).length;
                int[] out = t.subList(promptLength, t.size() - 1).stream().mapToInt(Integer::intValue).toArray();
                String text = tokenizer.decode(out, true);
                assertTrue(done[s], "constrained sequence " + s + " ended: " + text);
                var doc = json.readTree(text);
                assertTrue(doc.get("name").isTextual() && doc.get("n").isInt() && doc.get("ok").isBoolean(), text);
            }
            System.out.printf("[cuda] grammar masks on the device: %d steps, %d constrained tokens, every token equal to "
                    + "the CPU sampler's%n", steps, constrainedTokens);
        }
    }
}
