package io.kvass.bench.loadgen;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.ToIntFunction;

/**
 * vLLM's "random" dataset: each request gets an input length drawn uniformly from
 * {@code [I*(1-X), I*(1+X)]} and an output length from {@code [O*(1-X), O*(1+X)]}; the prompt is a
 * shared random prefix of P tokens followed by that many random tokens. Deterministic for a seed.
 *
 * <p>Completions prompts are token-id arrays drawn from a pool of ids (the whole vocabulary, or the ids
 * the server's tokenizer produced for random words), so their length is exact. Chat prompts are random
 * English words; with a token counter (the server's {@code /tokenize}) the word count is adjusted until
 * the text is as close as possible to the target length, otherwise one word is taken for one token.
 */
public final class RandomDataset {
    /** Common English words: chat prompts are drawn from these. */
    static final String[] WORDS = ("the of and to in is was he for it with as his on be at by had are but from or "
            + "have an they which one you were her all she there would their we him been has when who will more no "
            + "if out so said what up its about into than them can only other new some could time these two may "
            + "then do first any my now such like our over man me even most made after also did many before must "
            + "through back years where much your way well down should because each just those people how too little "
            + "state good very make world still own see men work long get here between both life being under never "
            + "day same another know while last might us great old year off come since against go came right used "
            + "take three house river garden window morning story light water green small quiet bright city road "
            + "music paper table stone cloud winter summer friend answer number letter question market forest").split(" ");

    private RandomDataset() {
    }

    /** Lengths for {@code n} requests, uniform integers in {@code [floor(len*(1-r)), ceil(len*(1+r))]}, at least 1. */
    static int[] lengths(SplittableRandom random, int n, int len, double ratio) {
        int lo = Math.max(1, (int) Math.floor(len * (1 - ratio)));
        int hi = Math.max(lo, (int) Math.ceil(len * (1 + ratio)));
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = lo == hi ? lo : random.nextInt(lo, hi + 1);
        }
        return out;
    }

    /** Token-id prompts, ids drawn uniformly from {@code pool}. */
    public static List<BenchRequest> tokenIds(int n, int inputLen, int outputLen, double ratio, int prefixLen,
                                              int[] pool, long seed) {
        return tokenIds(n, inputLen, outputLen, ratio, prefixLen, 1, pool, seed);
    }

    /**
     * As above with {@code groups} distinct shared prefixes (tenants, each with its own long system prompt): request
     * r uses a prefix drawn at random among them.
     */
    public static List<BenchRequest> tokenIds(int n, int inputLen, int outputLen, double ratio, int prefixLen,
                                              int groups, int[] pool, long seed) {
        if (pool.length == 0) {
            throw new IllegalArgumentException("empty token pool");
        }
        SplittableRandom random = new SplittableRandom(seed);
        int[] inputs = lengths(random, n, inputLen, ratio);
        int[] outputs = lengths(random, n, outputLen, ratio);
        int[][] prefixes = new int[Math.max(1, groups)][prefixLen];
        for (int[] prefix : prefixes) {
            for (int i = 0; i < prefixLen; i++) {
                prefix[i] = pool[random.nextInt(pool.length)];
            }
        }
        List<BenchRequest> out = new ArrayList<>(n);
        for (int r = 0; r < n; r++) {
            int[] prefix = prefixes[random.nextInt(prefixes.length)];
            int[] ids = new int[prefixLen + inputs[r]];
            System.arraycopy(prefix, 0, ids, 0, prefixLen);
            for (int i = prefixLen; i < ids.length; i++) {
                ids[i] = pool[random.nextInt(pool.length)];
            }
            out.add(new BenchRequest(r, ids, null, ids.length, outputs[r]));
        }
        return out;
    }

    /** The ids {@code [0, vocabSize)}. */
    public static int[] vocabulary(int vocabSize) {
        int[] pool = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            pool[i] = i;
        }
        return pool;
    }

    /** {@code count} random words joined by spaces. */
    public static String words(SplittableRandom random, int count) {
        StringBuilder sb = new StringBuilder(count * 6);
        for (int i = 0; i < count; i++) {
            if (i > 0) {
                sb.append(' ');
            }
            sb.append(WORDS[random.nextInt(WORDS.length)]);
        }
        return sb.toString();
    }

    /**
     * Random-word prompts. {@code counter} gives the token count of a text (null: one token per word);
     * each prompt's word count is scaled towards the target, then stepped by one word, a few calls at most.
     */
    public static List<BenchRequest> words(int n, int inputLen, int outputLen, double ratio, int prefixLen,
                                           ToIntFunction<String> counter, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int[] inputs = lengths(random, n, inputLen, ratio);
        int[] outputs = lengths(random, n, outputLen, ratio);
        String prefix = prefixLen == 0 ? "" : fit(random, prefixLen, counter, "") + " ";
        List<BenchRequest> out = new ArrayList<>(n);
        for (int r = 0; r < n; r++) {
            String text = prefix + fit(random, inputs[r], counter, prefix);
            int len = counter == null ? prefixLen + inputs[r] : counter.applyAsInt(text);
            out.add(new BenchRequest(r, null, text, len, outputs[r]));
        }
        return out;
    }

    /** Random words whose text, after {@code before}, counts {@code target} tokens (as near as a few tries get). */
    private static String fit(SplittableRandom random, int target, ToIntFunction<String> counter, String before) {
        List<String> words = new ArrayList<>();
        for (int i = 0; i < target; i++) {
            words.add(WORDS[random.nextInt(WORDS.length)]);
        }
        if (counter == null) {
            return String.join(" ", words);
        }
        int base = before.isEmpty() ? 0 : counter.applyAsInt(before.strip());
        int count = counter.applyAsInt(before + String.join(" ", words)) - base;
        for (int round = 0; round < 3 && count != target && count > 0; round++) {
            int want = Math.max(1, (int) Math.round(words.size() * (double) target / count));
            resize(random, words, want);
            count = counter.applyAsInt(before + String.join(" ", words)) - base;
        }
        for (int step = 0; step < 8 && count != target; step++) {
            int next = words.size() + (count < target ? 1 : -1);
            if (next < 1) {
                break;
            }
            List<String> previous = new ArrayList<>(words);
            resize(random, words, next);
            int c = counter.applyAsInt(before + String.join(" ", words)) - base;
            if (Math.abs(c - target) > Math.abs(count - target)) {
                words.clear();
                words.addAll(previous);
                break;
            }
            count = c;
        }
        return String.join(" ", words);
    }

    private static void resize(SplittableRandom random, List<String> words, int size) {
        while (words.size() > size) {
            words.removeLast();
        }
        while (words.size() < size) {
            words.add(WORDS[random.nextInt(WORDS.length)]);
        }
    }
}
