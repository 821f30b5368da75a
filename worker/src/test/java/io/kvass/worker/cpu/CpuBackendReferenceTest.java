package io.kvass.worker.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.GreedyRunner;
import io.kvass.worker.testing.ReferenceCase;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The CPU backend against transformers' fp32 references and llama2.c's golden output. */
class CpuBackendReferenceTest {
    private static final double LOGIT_TOLERANCE = 1e-4;

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void eachPromptAloneMatchesTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CpuBackend backend = new CpuBackend(model, 64, 16, 2)) {
            for (ReferenceCase.Prompt p : prompts) {
                GreedyRunner.Result r = GreedyRunner.run(backend, List.of(p.ids()), p.greedy().length).getFirst();
                assertMatches(variant, p, r);
            }
        }
    }

    /**
     * Two threads own one K/V head each (projections, RoPE and attention in one hand-off); three do not
     * divide the two K/V heads and take the stacked q/k/v split, attention after a barrier.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void threadsThatDoNotDivideTheKvHeadsMatchTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CpuBackend backend = new CpuBackend(model, 64, 16, 3)) {
            assertEquals(2, model.config().numKvHeads());
            List<GreedyRunner.Result> results = GreedyRunner.run(backend,
                    prompts.stream().map(ReferenceCase.Prompt::ids).toList(), prompts.getFirst().greedy().length);
            for (int i = 0; i < prompts.size(); i++) {
                assertMatches(variant, prompts.get(i), results.get(i));
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void allPromptsInOneBatchMatchTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CpuBackend backend = new CpuBackend(model, 64, 16, 2)) {
            List<GreedyRunner.Result> results = GreedyRunner.run(backend,
                    prompts.stream().map(ReferenceCase.Prompt::ids).toList(), prompts.getFirst().greedy().length);
            for (int i = 0; i < prompts.size(); i++) {
                assertMatches(variant, prompts.get(i), results.get(i));
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void chunkedPrefillOfSixteenTokensGivesTheReferenceLogits(String variant) {
        ReferenceCase.Prompt p = ReferenceCase.load(variant, "base").get(3);
        assertEquals(40, p.ids().length);
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CpuBackend backend = new CpuBackend(model, 8, 16, 2)) {
            int[] table = {5, 2, 7}; // any blocks, in any order
            for (int start = 0; start < p.ids().length; start += 16) {
                int end = Math.min(start + 16, p.ids().length);
                float[][] logits = backend.forward(List.of(new SequenceForward(
                        java.util.Arrays.copyOfRange(p.ids(), start, end), start, table, LogitsMode.ALL))).getFirst();
                for (int i = 0; i < logits.length; i++) {
                    double diff = ReferenceCase.maxAbsDiff(p.prefillLogits()[start + i], logits[i]);
                    assertTrue(diff < LOGIT_TOLERANCE, variant + " position " + (start + i) + " differs by " + diff);
                }
            }
        }
    }

    static void assertMatches(String variant, ReferenceCase.Prompt p, GreedyRunner.Result r) {
        String where = variant + " prompt " + p.index();
        assertEquals(p.prefillLogits().length, r.prefillLogits().length, where);
        for (int pos = 0; pos < p.prefillLogits().length; pos++) {
            double diff = ReferenceCase.maxAbsDiff(p.prefillLogits()[pos], r.prefillLogits()[pos]);
            assertTrue(diff < LOGIT_TOLERANCE, where + " position " + pos + ": prefill logits differ by " + diff);
        }
        assertArrayEquals(p.greedy(), r.greedy(), where + ": greedy ids");
        for (int step = 0; step < p.decodeLogits().length; step++) {
            double diff = ReferenceCase.maxAbsDiff(p.decodeLogits()[step], r.decodeLogits()[step]);
            assertTrue(diff < LOGIT_TOLERANCE, where + " decode step " + step + ": logits differ by " + diff);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"stories260K", "stories260K-llama2c"})
    void storiesReproducesLlama2cGoldenIds(String dir) throws IOException {
        Path modelDir = Fixtures.root().resolve("models").resolve(dir);
        var expected = new ObjectMapper().readTree(modelDir.resolve("expected.json").toFile());
        int[] prompt = ReferenceCase.ints(expected.path("prompt_ids"));
        int[] golden = ReferenceCase.ints(expected.path("greedy_ids"));
        assertEquals(200, golden.length);
        try (LoadedModel model = LoadedModel.load(modelDir);
             CpuBackend backend = new CpuBackend(model, 32, 16, 2)) {
            int[] ids = GreedyRunner.run(backend, List.of(prompt), golden.length).getFirst().greedy();
            assertArrayEquals(golden, ids);
        }
    }
}
