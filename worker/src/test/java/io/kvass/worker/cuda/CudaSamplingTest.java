package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.Sampler;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.sampling.SequenceSamplingState;
import io.kvass.worker.sampling.TokenLogprob;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The GPU sampler (sample.cu): greedy equals the argmax, seeded draws do not depend on the launch they
 * are in, top_k / top_p / min_p never draw outside the allowed set, and draw frequencies follow the
 * (filtered, renormalized) softmax.
 */
@Tag("gpu")
class CudaSamplingTest {
    private static CudaDevice device;
    private static CudaKernels kernels;

    @BeforeAll
    static void open() {
        Gpu.assumePresent();
        device = new CudaDevice(0);
        kernels = new CudaKernels(device);
    }

    @AfterAll
    static void close() {
        if (device != null) {
            kernels.close();
            device.close();
        }
    }

    /** One draw: parameters, seed, output position, logits row. */
    record Draw(SamplingParams params, long seed, int position, int row) {
    }

    /** Runs sample_rows over {@code logits} ({@code [rows, vocab]}). */
    private static int[] sample(float[] logits, int vocab, List<Draw> draws) {
        DeviceBuffer l = device.allocate(4L * logits.length, "test logits");
        ByteBuffer lh = device.allocateHost(4L * logits.length);
        lh.asFloatBuffer().put(logits);
        device.upload(l, 0, lh, 4L * logits.length);
        long descBytes = (long) CudaKernels.SAMPLE_ROW_BYTES * draws.size();
        DeviceBuffer d = device.allocate(descBytes, "test rows");
        ByteBuffer dh = device.allocateHost(descBytes);
        for (int i = 0; i < draws.size(); i++) {
            Draw w = draws.get(i);
            CudaBackend.putSampleRow(dh, i, w.params(), w.seed(), w.position(), w.row());
        }
        device.upload(d, 0, dh, descBytes);
        DeviceBuffer ids = device.allocate(4L * draws.size(), "test ids");
        kernels.sampleRows(draws.size(), l.address(), d.address(), ids.address(), vocab);
        ByteBuffer ih = device.allocateHost(4L * draws.size());
        device.download(ih, ids, 0, 4L * draws.size());
        device.synchronize();
        int[] out = new int[draws.size()];
        ih.asIntBuffer().get(out);
        return out;
    }

    private static float[] randomLogits(Random rnd, int rows, int vocab, double scale) {
        float[] out = new float[rows * vocab];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (rnd.nextGaussian() * scale);
        }
        return out;
    }

    private static SamplingParams.Builder params() {
        return SamplingParams.builder().maxTokens(16);
    }

    @Test
    void greedyAndTopKOneAreTheArgmax() {
        int vocab = 128256, rows = 40;
        Random rnd = new Random(1);
        float[] logits = randomLogits(rnd, rows, vocab, 3);
        // Ties at the maximum (lowest id wins), -inf and NaN entries.
        for (int r = 0; r < rows; r += 3) {
            logits[r * vocab + 90000] = 50f;
            logits[r * vocab + 1234] = 50f;
            logits[r * vocab + 5] = Float.NEGATIVE_INFINITY;
            logits[r * vocab + 6] = Float.NaN;
        }
        List<Draw> draws = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            SamplingParams p = r % 2 == 0 ? SamplingParams.greedy(16) : params().temperature(0.8f).topK(1).build();
            draws.add(new Draw(p, r, r, r));
        }
        int[] ids = sample(logits, vocab, draws);
        for (int r = 0; r < rows; r++) {
            assertEquals(argmax(logits, r * vocab, vocab), ids[r], "row " + r);
        }
        System.out.printf("[cuda] GPU greedy sampling: %d rows of %d equal the host argmax%n", rows, vocab);
    }

    private static int argmax(float[] logits, int offset, int vocab) {
        int best = -1;
        float value = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            if (logits[offset + i] > value) {
                value = logits[offset + i];
                best = i;
            }
        }
        return best;
    }

    private static List<SamplingParams> mixedParams() {
        return List.of(params().temperature(1f).build(), params().temperature(0.7f).build(),
                params().temperature(1f).topK(50).build(), params().temperature(0.9f).topP(0.9f).build(),
                params().temperature(1.3f).minP(0.05f).build(), params().temperature(0.8f).topK(200).topP(0.8f).build(),
                params().temperature(1f).topK(1000).topP(0.95f).minP(0.01f).build(), SamplingParams.greedy(16));
    }

    @Test
    void seededDrawsDoNotDependOnTheBatch() {
        int vocab = 32000, distinct = 16;
        Random rnd = new Random(2);
        float[] rows = randomLogits(rnd, distinct, vocab, 2.5);
        List<SamplingParams> kinds = mixedParams();
        // Alone: row r with parameters r % kinds, seed 1000 + r, positions 0..7.
        Map<String, Integer> expected = new HashMap<>();
        List<Draw> alone = new ArrayList<>();
        for (int r = 0; r < distinct; r++) {
            for (int pos = 0; pos < 8; pos++) {
                alone.add(new Draw(kinds.get(r % kinds.size()), 1000 + r, pos, r));
            }
        }
        int[] a = sample(rows, vocab, alone);
        for (int i = 0; i < alone.size(); i++) {
            expected.put(alone.get(i).row() + "/" + alone.get(i).position(), a[i]);
        }
        // Mixed: the same rows moved to other indices among unrelated rows, draws in another order.
        int extra = 11, total = distinct + extra;
        float[] mixed = randomLogits(new Random(3), total, vocab, 2.5);
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < total; i++) {
            slots.add(i);
        }
        Collections.shuffle(slots, new Random(4));
        for (int r = 0; r < distinct; r++) {
            System.arraycopy(rows, r * vocab, mixed, slots.get(r) * vocab, vocab);
        }
        List<Draw> batch = new ArrayList<>();
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < alone.size(); i++) {
            Draw w = alone.get(i);
            batch.add(new Draw(w.params(), w.seed(), w.position(), slots.get(w.row())));
            keys.add(w.row() + "/" + w.position());
        }
        for (int e = 0; e < 40; e++) {
            batch.add(new Draw(kinds.get(e % kinds.size()), 77 + e, e, slots.get(distinct + e % extra)));
            keys.add(null);
        }
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
            order.add(i);
        }
        Collections.shuffle(order, new Random(5));
        List<Draw> shuffled = order.stream().map(batch::get).toList();
        int[] b = sample(mixed, vocab, shuffled);
        for (int i = 0; i < order.size(); i++) {
            String key = keys.get(order.get(i));
            if (key != null) {
                assertEquals(expected.get(key), b[i], "draw " + key + " alone vs in a mixed launch");
            }
        }
        // The stream moves with the position and the seed.
        Set<Integer> byPosition = new HashSet<>();
        for (int i = 0; i < 8; i++) {
            byPosition.add(a[i]);  // row 0, T = 1, positions 0..7
        }
        assertTrue(byPosition.size() > 1, "row 0 drew " + byPosition + " at every position");
        List<Draw> otherSeed = new ArrayList<>();
        for (int pos = 0; pos < 8; pos++) {
            otherSeed.add(new Draw(kinds.get(0), 999_999, pos, 0));
        }
        assertFalse(Arrays.equals(Arrays.copyOf(a, 8), sample(rows, vocab, otherSeed)), "another seed, same tokens");
        System.out.printf("[cuda] GPU seeded sampling: %d draws identical alone and in a shuffled launch of %d%n",
                alone.size(), shuffled.size());
    }

    /**
     * The tokens the CPU sampler may draw (vLLM order: min_p, top_k with lowest-id ties, top_p over the
     * survivors), with top_p's mass computed at {@code p + slack} so that the GPU's fixed-point sums
     * cannot put one token past the boundary.
     */
    static Set<Integer> allowed(float[] logits, int offset, int vocab, SamplingParams p, double slack) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        double cut = p.minP() > 0 ? max + p.temperature() * Math.log(p.minP()) : Double.NEGATIVE_INFINITY;
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < vocab; i++) {
            float l = logits[offset + i];
            if (l > Float.NEGATIVE_INFINITY && l >= cut) {
                ids.add(i);
            }
        }
        ids.sort((x, y) -> {
            int c = Float.compare(logits[offset + y], logits[offset + x]);
            return c != 0 ? c : Integer.compare(x, y);
        });
        if (p.topK() > 0 && p.topK() < ids.size()) {
            ids = new ArrayList<>(ids.subList(0, p.topK()));
        }
        if (p.topP() < 1f) {
            double total = 0;
            for (int id : ids) {
                total += Math.exp((logits[offset + id] - max) / p.temperature());
            }
            double threshold = Math.min(1.0, p.topP() + slack) * total, kept = 0;
            int n = 0;
            while (n < ids.size() && kept < threshold) {
                kept += Math.exp((logits[offset + ids.get(n)] - max) / p.temperature());
                n++;
            }
            ids = new ArrayList<>(ids.subList(0, n));
        }
        return new HashSet<>(ids);
    }

    @Test
    void filtersNeverDrawOutsideTheAllowedSet() {
        int vocab = 5000;
        Random rnd = new Random(6);
        List<SamplingParams> kinds = List.of(params().temperature(1f).topK(5).build(),
                params().temperature(2f).topK(40).build(), params().temperature(1f).topP(0.5f).build(),
                params().temperature(0.7f).topP(0.9f).build(), params().temperature(1f).minP(0.2f).build(),
                params().temperature(1.5f).topK(30).topP(0.6f).build(),
                params().temperature(1f).topK(100).topP(0.9f).minP(0.05f).build());
        float[] logits = randomLogits(rnd, kinds.size(), vocab, 2);
        // Ties across the top-k boundary of row 0 (k = 5): the ids kept are the lowest.
        for (int id : new int[] {10, 20, 30, 40, 50, 60, 70}) {
            logits[id] = 20f;
        }
        int perKind = 3000;
        List<Draw> draws = new ArrayList<>();
        for (int k = 0; k < kinds.size(); k++) {
            for (int pos = 0; pos < perKind; pos++) {
                draws.add(new Draw(kinds.get(k), 42 + k, pos, k));
            }
        }
        int[] ids = sample(logits, vocab, draws);
        for (int k = 0; k < kinds.size(); k++) {
            Set<Integer> allowed = allowed(logits, k * vocab, vocab, kinds.get(k), 1e-6);
            Set<Integer> seen = new HashSet<>();
            for (int pos = 0; pos < perKind; pos++) {
                int id = ids[k * perKind + pos];
                assertTrue(allowed.contains(id), "row " + k + " (" + kinds.get(k) + ") drew " + id + " outside "
                        + (allowed.size() < 50 ? allowed : allowed.size() + " allowed ids"));
                seen.add(id);
            }
            if (kinds.get(k).topK() == 5) {
                assertEquals(Set.of(10, 20, 30, 40, 50), seen, "top_k 5 over 7 tied maxima keeps the 5 lowest ids");
            }
            System.out.printf("[cuda] GPU sampling %s: %d distinct of %d allowed%n", describe(kinds.get(k)),
                    seen.size(), allowed.size());
        }
    }

    private static String describe(SamplingParams p) {
        return String.format("T=%.2f top_k=%d top_p=%.2f min_p=%.2f", p.temperature(), p.topK(), p.topP(), p.minP());
    }

    @Test
    void frequenciesFollowTheFilteredSoftmax() {
        int vocab = 12, n = 60000;
        float[] row = {2.0f, 1.5f, 1.2f, 1.0f, 0.5f, 0.0f, -0.5f, -1f, -2f, -3f, 1.5f, Float.NEGATIVE_INFINITY};
        List<SamplingParams> kinds = List.of(params().temperature(1f).build(), params().temperature(0.6f).build(),
                params().temperature(1.2f).topK(6).topP(0.8f).build(), params().temperature(1f).minP(0.15f).build(),
                params().temperature(1f).topP(0.7f).build());
        float[] logits = new float[vocab * kinds.size()];
        for (int k = 0; k < kinds.size(); k++) {
            System.arraycopy(row, 0, logits, k * vocab, vocab);
        }
        List<Draw> draws = new ArrayList<>();
        for (int k = 0; k < kinds.size(); k++) {
            for (int pos = 0; pos < n; pos++) {
                draws.add(new Draw(kinds.get(k), 7, pos, k));
            }
        }
        int[] ids = sample(logits, vocab, draws);
        for (int k = 0; k < kinds.size(); k++) {
            SamplingParams p = kinds.get(k);
            Set<Integer> support = allowed(row, 0, vocab, p, 0);
            double[] expected = new double[vocab];
            double total = 0;
            for (int id : support) {
                expected[id] = Math.exp((row[id] - 2.0) / p.temperature());
                total += expected[id];
            }
            int[] counts = new int[vocab];
            for (int i = 0; i < n; i++) {
                counts[ids[k * n + i]]++;
            }
            double worst = 0;
            for (int id = 0; id < vocab; id++) {
                double q = expected[id] / total, f = counts[id] / (double) n;
                double sigma = Math.sqrt(q * (1 - q) / n);
                assertTrue(Math.abs(f - q) <= 5 * sigma + 1e-9, describe(p) + ": token " + id + " drawn " + f
                        + " of the time, softmax says " + q);
                worst = Math.max(worst, sigma == 0 ? 0 : Math.abs(f - q) / sigma);
            }
            System.out.printf("[cuda] GPU sampling frequencies %s: %d draws, worst deviation %.2f sigma%n",
                    describe(p), n, worst);
        }
    }

    /** Not a check: how long sample_rows takes for a decode batch at Llama 3's vocabulary. */
    @Test
    void samplingTimeAtLlama3Vocabulary() {
        int vocab = 128256;
        for (int rows : new int[] {1, 64, 256}) {
            float[] logits = randomLogits(new Random(rows), rows, vocab, 3);
            DeviceBuffer l = device.allocate(4L * logits.length, "timing logits");
            ByteBuffer lh = device.allocateHost(4L * logits.length);
            lh.asFloatBuffer().put(logits);
            device.upload(l, 0, lh, 4L * logits.length);
            DeviceBuffer ids = device.allocate(4L * rows, "timing ids");
            StringBuilder line = new StringBuilder();
            for (SamplingParams p : List.of(SamplingParams.greedy(16), params().temperature(1f).build(),
                    params().temperature(0.8f).topK(50).build(), params().temperature(0.8f).topP(0.95f).build(),
                    params().temperature(0.8f).topK(1000).topP(0.9f).minP(0.01f).build())) {
                long bytes = (long) CudaKernels.SAMPLE_ROW_BYTES * rows;
                DeviceBuffer d = device.allocate(bytes, "timing rows");
                ByteBuffer dh = device.allocateHost(bytes);
                for (int r = 0; r < rows; r++) {
                    CudaBackend.putSampleRow(dh, r, p, r, 0, r);
                }
                device.upload(d, 0, dh, bytes);
                for (int i = 0; i < 3; i++) {
                    kernels.sampleRows(rows, l.address(), d.address(), ids.address(), vocab);
                }
                device.synchronize();
                int reps = 20;
                long t0 = System.nanoTime();
                for (int i = 0; i < reps; i++) {
                    kernels.sampleRows(rows, l.address(), d.address(), ids.address(), vocab);
                }
                device.synchronize();
                line.append(String.format(" | %s: %.1f us", describe(p), (System.nanoTime() - t0) / 1e3 / reps));
            }
            System.out.printf("[cuda] sample_rows, %d rows of %d%s%n", rows, vocab, line);
        }
    }

    @Test
    void backendSamplesOnTheGpuWithLogprobs() {
        Gpu.assumePresent();
        ModelConfig c = new ModelConfig(Architecture.LLAMA, 256, 512, 2, 8, 2, 32, 1000, 1e-5f,
                RopeScaling.plain(10000), 512, false, false, OptionalInt.empty(), Set.of());
        try (LoadedModel model = CudaBackendVsCpuTest.randomModel(c, 5);
             CudaBackend gpu = CudaBackend.open(model, CudaOptions.defaults(512).withKvBlocks(32))) {
            Random rnd = new Random(8);
            int[][] prompts = {rnd.ints(40, 0, 1000).toArray(), rnd.ints(3, 0, 1000).toArray(), rnd.ints(17, 0, 1000).toArray()};
            int[][] tables = {{0, 1, 2, 3}, {4}, {5, 6}};
            List<SequenceForward> batch = new ArrayList<>();
            for (int s = 0; s < 3; s++) {
                batch.add(new SequenceForward(prompts[s], 0, tables[s], LogitsMode.LAST));
            }
            List<float[][]> logits = gpu.forward(batch);
            SamplingParams greedy = SamplingParams.greedy(8);
            SamplingParams seeded = params().temperature(0.9f).topP(0.9f).seed(31).build();
            SamplingParams logprobs = params().temperature(0f).logprobs(3).build();
            List<SequenceSamplingState> states = List.of(
                    SequenceSamplingState.create(greedy, prompts[0], new int[0]),
                    SequenceSamplingState.create(seeded, prompts[1], new int[0]),
                    SequenceSamplingState.create(logprobs, prompts[2], new int[0]));
            List<SampledToken> tokens = gpu.forwardAndSample(batch, states, Sampler.cpu());
            assertEquals(argmax(logits.get(0)[0], 0, 1000), tokens.get(0).tokenId());
            assertFalse(tokens.get(0).hasLogprob());
            assertEquals(argmax(logits.get(2)[0], 0, 1000), tokens.get(2).tokenId());
            assertTrue(tokens.get(2).hasLogprob(), "a logprobs row comes back with its logprobs");
            assertEquals(3, tokens.get(2).topLogprobs().size());
            // The same as the CPU sampler computes from the row (raw log-softmax in double, top 3 by logit).
            SampledToken cpu = Sampler.cpu().sample(logits.get(2)[0].clone(),
                    SequenceSamplingState.create(logprobs, prompts[2], new int[0]));
            assertEquals(cpu.tokenId(), tokens.get(2).tokenId());
            assertEquals(cpu.logprob(), tokens.get(2).logprob(), 1e-5f);
            for (int k = 0; k < 3; k++) {
                assertEquals(cpu.topLogprobs().get(k).tokenId(), tokens.get(2).topLogprobs().get(k).tokenId(), "rank " + k);
                assertEquals(cpu.topLogprobs().get(k).logprob(), tokens.get(2).topLogprobs().get(k).logprob(), 1e-5f);
            }
            for (SequenceSamplingState s : states) {
                assertEquals(1, s.outputLength());
            }
            // The seeded row again from a fresh state: the same token.
            List<SequenceSamplingState> again = List.of(SequenceSamplingState.create(greedy, prompts[0], new int[0]),
                    SequenceSamplingState.create(seeded, prompts[1], new int[0]),
                    SequenceSamplingState.create(logprobs, prompts[2], new int[0]));
            assertEquals(tokens.get(1).tokenId(), gpu.forwardAndSample(batch, again, Sampler.cpu()).get(1).tokenId());
            // A NONE row gets no token; a decode step after the prompts (graph path).
            List<SequenceForward> decode = new ArrayList<>();
            for (int s = 0; s < 3; s++) {
                decode.add(new SequenceForward(new int[] {tokens.get(s).tokenId()}, prompts[s].length, tables[s],
                        s == 1 ? LogitsMode.NONE : LogitsMode.LAST));
            }
            List<float[][]> decodeLogits = gpu.forward(decode);
            List<SampledToken> next = gpu.forwardAndSample(decode, Arrays.asList(states.get(0), null, states.get(2)),
                    Sampler.cpu());
            assertEquals(null, next.get(1));
            assertEquals(argmax(decodeLogits.get(0)[0], 0, 1000), next.get(0).tokenId());
            assertEquals(argmax(decodeLogits.get(2)[0], 0, 1000), next.get(2).tokenId());
            List<SequenceForward> graphStep = new ArrayList<>();
            for (int s = 0; s < 3; s++) {
                graphStep.add(new SequenceForward(new int[] {11 + s}, prompts[s].length + 1, tables[s], LogitsMode.LAST));
            }
            List<float[][]> graphLogits = gpu.forward(graphStep);
            SequenceSamplingState fresh = SequenceSamplingState.create(greedy, prompts[1], new int[0]);
            List<SampledToken> graphTokens = gpu.forwardAndSample(graphStep, List.of(states.get(0), fresh, states.get(2)),
                    Sampler.cpu());
            for (int s = 0; s < 3; s++) {
                assertEquals(argmax(graphLogits.get(s)[0], 0, 1000), graphTokens.get(s).tokenId(), "graph step, row " + s);
            }
            // A seeded row with logprobs (20, the most allowed): its drawn token's logprob under the raw row.
            SamplingParams seededLogprobs = params().temperature(1.1f).topK(40).seed(77).logprobs(20).build();
            SampledToken drawn = gpu.forwardAndSample(batch, List.of(
                    SequenceSamplingState.create(greedy, prompts[0], new int[0]),
                    SequenceSamplingState.create(seededLogprobs, prompts[1], new int[0]),
                    SequenceSamplingState.create(greedy, prompts[2], new int[0])), Sampler.cpu()).get(1);
            float[] row = logits.get(1)[0];
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (float v : row) {
                max = Math.max(max, v);
            }
            for (float v : row) {
                sum += Math.exp(v - max);
            }
            double lse = max + Math.log(sum);
            assertEquals((float) (row[drawn.tokenId()] - lse), drawn.logprob(), 1e-5f);
            assertEquals(20, drawn.topLogprobs().size());
            for (int k = 0; k < 20; k++) {
                TokenLogprob t = drawn.topLogprobs().get(k);
                assertEquals((float) (row[t.tokenId()] - lse), t.logprob(), 1e-5f);
                if (k > 0) {
                    assertTrue(t.logprob() <= drawn.topLogprobs().get(k - 1).logprob(), "most likely first");
                }
            }
            System.out.println("[cuda] backend forwardAndSample: GPU greedy/seeded rows with and without logprobs, graph decode");
        }
    }
}
