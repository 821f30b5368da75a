package io.kvass.worker.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.model.SafeTensorsFile;
import io.kvass.worker.model.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** One variant's transformers/PEFT reference: per tag ({@code base}, {@code adapter-a}, ...) four prompts. */
public final class ReferenceCase {

    /** A prompt with its reference greedy ids and logits ([len, vocab] and [24, vocab]). */
    public record Prompt(int index, int[] ids, int[] greedy, double minTop2Gap, float[][] prefillLogits,
                         float[][] decodeLogits) {
    }

    private ReferenceCase() {
    }

    public static List<Prompt> load(String variant, String tag) {
        Path dir = Fixtures.reference(variant);
        try (Arena arena = Arena.ofConfined()) {
            JsonNode json = new ObjectMapper().readTree(dir.resolve("reference.json").toFile()).path(tag);
            SafeTensorsFile logits = SafeTensorsFile.open(dir.resolve("reference.safetensors"), arena);
            List<Prompt> prompts = new ArrayList<>();
            for (int i = 0; i < json.size(); i++) {
                JsonNode p = json.get(i);
                String key = tag + ".prompt" + i + ".";
                prompts.add(new Prompt(i, ints(p.path("prompt")), ints(p.path("greedy")), p.path("min_top2_gap").asDouble(),
                        matrix(logits.find(key + "prefill_logits").orElseThrow()),
                        matrix(logits.find(key + "decode_logits").orElseThrow())));
            }
            if (prompts.isEmpty()) {
                throw new IllegalStateException("no prompts for " + tag + " in " + dir);
            }
            return prompts;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    private static float[][] matrix(Tensor t) {
        int rows = (int) t.shape()[0], cols = (int) t.shape()[1];
        float[][] out = new float[rows][cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r][c] = t.data().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, (long) r * cols + c);
            }
        }
        return out;
    }

    /** Largest absolute difference between two logit rows. */
    public static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("logit rows differ in length: " + a.length + " vs " + b.length);
        }
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
