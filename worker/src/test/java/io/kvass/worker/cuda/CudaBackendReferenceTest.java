package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.backend.Backend;
import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.GreedyRunner;
import io.kvass.worker.testing.ReferenceCase;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The CUDA backend against transformers' fp32 references and llama2.c's golden output.
 *
 * <p>Tolerances. The backend keeps weights and activations in bf16 (fp32 accumulation, fp32
 * residual stream), so its logits differ from an fp32 reference by more than rounding: a NumPy
 * emulation of exactly these roundings (bf16 weights; bf16 normed inputs, q/k/v, attention output,
 * gate/up and their product) differs from the references by at most 0.19 (llama-gqa, bf16 weights) and
 * 0.41 (qwen2-bias, whose fp32 weights are rounded to bf16) over all prompts and steps. We allow 0.25
 * and 0.5. Greedy ids are compared up to the first step whose reference top-2 gap is below the
 * tolerance: past it a bf16 backend may legitimately choose the other token.
 */
@Tag("gpu")
class CudaBackendReferenceTest {

    @BeforeAll
    static void gpu() {
        Gpu.assumePresent();
    }

    /** bf16 vs fp32 logits of stories260K: 0.28 at most over 200 steps in the NumPy emulation. */
    static final double STORIES_TOLERANCE = 0.35;

    static double tolerance(String variant) {
        return variant.equals("qwen2-bias") ? 0.5 : 0.25;
    }

    static CudaBackend open(LoadedModel model, int blocks, boolean graphs) {
        return CudaBackend.open(model, CudaOptions.defaults(model.config().maxPositions()).withKvBlocks(blocks)
                .withCudaGraphs(graphs).withMaxTokensPerStep(256));
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void eachPromptAloneMatchesTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant)); CudaBackend backend = open(model, 64, true)) {
            for (ReferenceCase.Prompt p : prompts) {
                assertMatches(variant, "alone", p, GreedyRunner.run(backend, List.of(p.ids()), p.greedy().length).getFirst());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void allPromptsInOneBatchMatchTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant)); CudaBackend backend = open(model, 64, true)) {
            List<GreedyRunner.Result> results = GreedyRunner.run(backend,
                    prompts.stream().map(ReferenceCase.Prompt::ids).toList(), prompts.getFirst().greedy().length);
            for (int i = 0; i < prompts.size(); i++) {
                assertMatches(variant, "batch", prompts.get(i), results.get(i));
            }
        }
    }

    /**
     * Continuous batching: prompt i starts at step 2i, its prefill in 16-token chunks mixed into the
     * same steps as the other prompts' decodes, in blocks scattered over the pool.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void mixedPrefillAndDecodeStepsMatchTransformers(String variant) {
        List<ReferenceCase.Prompt> prompts = ReferenceCase.load(variant, "base");
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant)); CudaBackend backend = open(model, 64, true)) {
            int steps = prompts.getFirst().greedy().length;
            int n = prompts.size();
            int[][] tables = new int[n][];
            for (int s = 0; s < n; s++) {
                tables[s] = new int[(prompts.get(s).ids().length + steps + 15) / 16];
                for (int b = 0; b < tables[s].length; b++) {
                    tables[s][b] = 63 - (b * n + s); // interleaved, from the top of the pool down
                }
            }
            int[] fed = new int[n];            // prompt tokens already prefilled
            List<List<float[]>> prefill = new ArrayList<>();
            List<List<Integer>> greedy = new ArrayList<>();
            List<List<float[]>> decode = new ArrayList<>();
            for (int s = 0; s < n; s++) {
                prefill.add(new ArrayList<>());
                greedy.add(new ArrayList<>());
                decode.add(new ArrayList<>());
            }
            for (int step = 0; greedy.stream().anyMatch(g -> g.size() < steps); step++) {
                List<SequenceForward> batch = new ArrayList<>();
                List<Integer> who = new ArrayList<>();
                for (int s = 0; s < n; s++) {
                    int[] ids = prompts.get(s).ids();
                    if (step < 2 * s || greedy.get(s).size() >= steps) {
                        continue;
                    }
                    if (fed[s] < ids.length) {
                        int end = Math.min(ids.length, fed[s] + 16);
                        batch.add(new SequenceForward(Arrays.copyOfRange(ids, fed[s], end), fed[s], tables[s], LogitsMode.ALL));
                        fed[s] = end;
                    } else {
                        int pos = ids.length + greedy.get(s).size() - 1;
                        batch.add(new SequenceForward(new int[] {greedy.get(s).getLast()}, pos, tables[s], LogitsMode.LAST));
                    }
                    who.add(s);
                }
                List<float[][]> out = backend.forward(batch);
                for (int i = 0; i < who.size(); i++) {
                    int s = who.get(i);
                    float[][] rows = out.get(i);
                    if (batch.get(i).logits() == LogitsMode.ALL) {
                        prefill.get(s).addAll(Arrays.asList(rows));
                        if (fed[s] < prompts.get(s).ids().length) {
                            continue;
                        }
                    }
                    float[] last = rows[rows.length - 1];
                    decode.get(s).add(last);
                    greedy.get(s).add(GreedyRunner.argmax(last));
                }
            }
            for (int s = 0; s < n; s++) {
                assertMatches(variant, "mixed", prompts.get(s), new GreedyRunner.Result(
                        prefill.get(s).toArray(new float[0][]), greedy.get(s).stream().mapToInt(Integer::intValue).toArray(),
                        decode.get(s).toArray(new float[0][])));
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void chunkedPrefillOfSixteenTokensGivesTheReferenceLogits(String variant) {
        ReferenceCase.Prompt p = ReferenceCase.load(variant, "base").get(3);
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant)); CudaBackend backend = open(model, 8, true)) {
            int[] table = {5, 2, 7};
            double worst = 0;
            for (int start = 0; start < p.ids().length; start += 16) {
                int end = Math.min(start + 16, p.ids().length);
                float[][] logits = backend.forward(List.of(new SequenceForward(
                        Arrays.copyOfRange(p.ids(), start, end), start, table, LogitsMode.ALL))).getFirst();
                for (int i = 0; i < logits.length; i++) {
                    worst = Math.max(worst, ReferenceCase.maxAbsDiff(p.prefillLogits()[start + i], logits[i]));
                }
            }
            System.out.printf("[cuda] %s chunked prefill: max |diff| %.4f%n", variant, worst);
            assertTrue(worst < tolerance(variant), variant + " chunked prefill differs by " + worst);
        }
    }

    /** Graph replay, eager launches and a step split in pieces compute the same logits; copied blocks serve a fork. */
    @Test
    void graphsEagerSplitStepsAndCopiedBlocksAgree() {
        ReferenceCase.Prompt p = ReferenceCase.load("llama-gqa", "base").get(3);
        try (LoadedModel model = LoadedModel.load(Fixtures.reference("llama-gqa"));
             CudaBackend graphs = open(model, 16, true);
             CudaBackend eager = CudaBackend.open(model, CudaOptions.defaults(256).withKvBlocks(16).withCudaGraphs(false)
                     .withMaxTokensPerStep(7))) {
            List<GreedyRunner.Result> a = GreedyRunner.run(graphs, List.of(p.ids()), 12);
            List<GreedyRunner.Result> b = GreedyRunner.run(eager, List.of(p.ids()), 12);
            assertArrayEquals(a.getFirst().greedy(), b.getFirst().greedy());
            for (int i = 0; i < p.ids().length; i++) {
                assertTrue(ReferenceCase.maxAbsDiff(a.getFirst().prefillLogits()[i], b.getFirst().prefillLogits()[i]) < 0.05);
            }
            for (int i = 0; i < 12; i++) {
                double diff = ReferenceCase.maxAbsDiff(a.getFirst().decodeLogits()[i], b.getFirst().decodeLogits()[i]);
                assertTrue(diff < 0.05, "step " + i + " graph vs eager differ by " + diff);
            }
            assertTrue(graphs.graphCount() > 0, "decode steps ran as graphs");
            // Fork: copy the prompt's blocks (0..3 by GreedyRunner's layout) to 8..11 and decode from there.
            graphs.copyBlocks(new int[] {0, 1, 2, 3}, new int[] {8, 9, 10, 11});
            int pos = p.ids().length + 11 - 1;
            int last = a.getFirst().greedy()[10];
            float[] again = graphs.forward(List.of(new SequenceForward(new int[] {last}, pos, new int[] {8, 9, 10, 11},
                    LogitsMode.LAST))).getFirst()[0];
            double diff = ReferenceCase.maxAbsDiff(a.getFirst().decodeLogits()[11], again);
            System.out.printf("[cuda] fork after copyBlocks: max |diff| %.2e%n", diff);
            assertTrue(diff < 1e-3, "decode from copied blocks differs by " + diff);
        }
    }

    /**
     * llama2.c's 200 greedy ids (which the fp32 CPU backend reproduces). A bf16 backend must follow them
     * while its logits stay within {@link #STORIES_TOLERANCE} of the CPU's, and may leave them only at
     * a near tie: a step whose fp32 top-2 gap is within twice the logit error seen so far. (Seen on an
     * H100: 185 ids, then step 185, whose fp32 gap is 0.0042, the smallest of the 200.)
     */
    @ParameterizedTest
    @ValueSource(strings = {"stories260K", "stories260K-llama2c"})
    void storiesFollowsLlama2cGoldenIdsUpToANearTie(String dir) throws IOException {
        Path modelDir = Fixtures.root().resolve("models").resolve(dir);
        var expected = new ObjectMapper().readTree(modelDir.resolve("expected.json").toFile());
        int[] prompt = ReferenceCase.ints(expected.path("prompt_ids"));
        int[] golden = ReferenceCase.ints(expected.path("greedy_ids"));
        assertEquals(200, golden.length);
        try (LoadedModel model = LoadedModel.load(modelDir); CudaBackend backend = open(model, 32, true);
             io.kvass.worker.cpu.CpuBackend cpu = new io.kvass.worker.cpu.CpuBackend(model, 32, 16, 4)) {
            GreedyRunner.Result gpu = GreedyRunner.run(backend, List.of(prompt), golden.length).getFirst();
            GreedyRunner.Result ref = GreedyRunner.run(cpu, List.of(prompt), golden.length).getFirst();
            assertArrayEquals(golden, ref.greedy(), "the fp32 CPU backend reproduces llama2.c");
            int same = 0;
            double worst = 0;
            while (same < golden.length && gpu.greedy()[same] == golden[same]) {
                worst = Math.max(worst, ReferenceCase.maxAbsDiff(ref.decodeLogits()[same], gpu.decodeLogits()[same]));
                same++;
            }
            double gap = same < golden.length ? Gpu.top2Gap(ref.decodeLogits()[same]) : Double.NaN;
            double err = same < golden.length
                    ? Math.max(worst, ReferenceCase.maxAbsDiff(ref.decodeLogits()[same], gpu.decodeLogits()[same])) : worst;
            System.out.printf("[cuda] %s: %d of 200 greedy ids match llama2.c; logits within %.4f of fp32%s%n", dir, same,
                    worst, same < golden.length ? String.format(" (step %d: fp32 top-2 gap %.4f)", same, gap) : "");
            assertTrue(worst < STORIES_TOLERANCE, dir + ": logits differ from fp32 by " + worst);
            assertTrue(same == golden.length || gap <= 2 * err,
                    dir + ": greedy ids leave llama2.c's at step " + same + " where the fp32 top-2 gap " + gap
                            + " exceeds twice the logit error " + err);
        }
    }

    static void assertMatches(String variant, String how, ReferenceCase.Prompt p, GreedyRunner.Result r) {
        String where = variant + " " + how + " prompt " + p.index();
        double tol = tolerance(variant);
        assertEquals(p.prefillLogits().length, r.prefillLogits().length, where);
        double prefillWorst = 0;
        for (int pos = 0; pos < p.prefillLogits().length; pos++) {
            prefillWorst = Math.max(prefillWorst, ReferenceCase.maxAbsDiff(p.prefillLogits()[pos], r.prefillLogits()[pos]));
        }
        int comparable = 0;
        while (comparable < p.greedy().length && Gpu.top2Gap(p.decodeLogits()[comparable]) >= tol) {
            comparable++;
        }
        int same = 0;
        while (same < p.greedy().length && p.greedy()[same] == r.greedy()[same]) {
            same++;
        }
        double decodeWorst = 0;
        for (int step = 0; step < same; step++) {
            decodeWorst = Math.max(decodeWorst, ReferenceCase.maxAbsDiff(p.decodeLogits()[step], r.decodeLogits()[step]));
        }
        System.out.printf("[cuda] %s: prefill max |diff| %.4f, decode max |diff| %.4f over %d steps; ids equal for %d "
                + "steps, gap >= %.2f for the first %d%n", where, prefillWorst, decodeWorst, same, same, tol, comparable);
        assertTrue(prefillWorst < tol, where + ": prefill logits differ by " + prefillWorst);
        assertTrue(decodeWorst < tol, where + ": decode logits differ by " + decodeWorst);
        int differ = same;
        assertTrue(same >= comparable, () -> where + ": greedy ids differ at step " + differ
                + " where the reference top-2 gap is " + Gpu.top2Gap(p.decodeLogits()[differ]));
    }
}
