package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class RandomDatasetTest {
    @Test
    void exactLengthsWithoutRange() {
        List<BenchRequest> r = RandomDataset.tokenIds(50, 32, 64, 0.0, 0, RandomDataset.vocabulary(512), 0);
        assertEquals(50, r.size());
        for (BenchRequest b : r) {
            assertEquals(32, b.promptIds().length);
            assertEquals(32, b.promptLen());
            assertEquals(64, b.outputLen());
            assertTrue(Arrays.stream(b.promptIds()).allMatch(id -> id >= 0 && id < 512));
        }
        assertTrue(!Arrays.equals(r.get(0).promptIds(), r.get(1).promptIds()));
    }

    @Test
    void rangeRatioBoundsAndCoversTheRange() {
        List<BenchRequest> r = RandomDataset.tokenIds(2000, 100, 10, 0.5, 0, new int[] {7, 9}, 1);
        int minIn = r.stream().mapToInt(BenchRequest::promptLen).min().orElseThrow();
        int maxIn = r.stream().mapToInt(BenchRequest::promptLen).max().orElseThrow();
        int minOut = r.stream().mapToInt(BenchRequest::outputLen).min().orElseThrow();
        int maxOut = r.stream().mapToInt(BenchRequest::outputLen).max().orElseThrow();
        assertEquals(50, minIn);
        assertEquals(150, maxIn);
        assertEquals(5, minOut);
        assertEquals(15, maxOut);
        double meanIn = r.stream().mapToInt(BenchRequest::promptLen).average().orElseThrow();
        assertEquals(100, meanIn, 2.5);
        assertTrue(r.stream().allMatch(b -> Arrays.stream(b.promptIds()).allMatch(id -> id == 7 || id == 9)));
    }

    @Test
    void sharedPrefixAndDeterminism() {
        List<BenchRequest> a = RandomDataset.tokenIds(10, 8, 4, 0.0, 16, RandomDataset.vocabulary(1000), 5);
        List<BenchRequest> b = RandomDataset.tokenIds(10, 8, 4, 0.0, 16, RandomDataset.vocabulary(1000), 5);
        int[] prefix = Arrays.copyOf(a.get(0).promptIds(), 16);
        for (int i = 0; i < 10; i++) {
            assertEquals(24, a.get(i).promptLen());
            assertArrayEquals(prefix, Arrays.copyOf(a.get(i).promptIds(), 16));
            assertArrayEquals(a.get(i).promptIds(), b.get(i).promptIds());
        }
    }

    @Test
    void wordsWithoutCounterTakeOneTokenPerWord() {
        List<BenchRequest> r = RandomDataset.words(5, 20, 8, 0.0, 0, null, 3);
        for (BenchRequest b : r) {
            assertTrue(b.isText());
            assertEquals(20, b.promptText().split(" ").length);
            assertEquals(20, b.promptLen());
        }
    }

    @Test
    void wordsAreFittedToTheCounter() {
        // a tokenizer that makes two tokens of every word longer than 4 letters
        java.util.function.ToIntFunction<String> counter = text -> Arrays.stream(text.strip().split(" +"))
                .filter(w -> !w.isEmpty()).mapToInt(w -> w.length() > 4 ? 2 : 1).sum();
        List<BenchRequest> r = RandomDataset.words(20, 40, 8, 0.0, 10, counter, 4);
        // the prefix (10 tokens) is at least 5 words: all prompts start with the same 5 words
        String prefix = String.join(" ", Arrays.copyOf(r.get(0).promptText().split(" "), 5));
        for (BenchRequest b : r) {
            assertTrue(Math.abs(b.promptLen() - 50) <= 2, "fitted to 10 + 40 tokens: " + b.promptLen());
            assertEquals(counter.applyAsInt(b.promptText()), b.promptLen());
            assertTrue(b.promptText().startsWith(prefix));
        }
    }

    @Test
    void wordsAreRandom() {
        String a = RandomDataset.words(new SplittableRandom(1), 30);
        String b = RandomDataset.words(new SplittableRandom(2), 30);
        assertTrue(!a.equals(b));
        assertEquals(a, RandomDataset.words(new SplittableRandom(1), 30));
    }
}
