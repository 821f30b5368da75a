package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** llama2.c's tokenizer against the reference text and against HF's tokenizer.json of the same vocabulary. */
class Llama2cTokenizerTest {

    private static Tokenizer llama2c;
    private static Tokenizer hf;

    @BeforeAll
    static void load() {
        llama2c = Fixtures.tokenizer("models/stories260K-llama2c");
        hf = Fixtures.tokenizer("models/stories260K");
    }

    @Test
    void picksLlama2cTokenizerForTokBin() {
        assertInstanceOf(Llama2cTokenizer.class, llama2c);
    }

    @Test
    void decodesTheReferenceGenerationToItsText() {
        JsonNode expected = Fixtures.json("models/stories260K-llama2c/expected.json");
        int[] ids = Fixtures.ints(expected.get("greedy_ids"));
        assertEquals(expected.get("expected_text").asText(), llama2c.decode(ids, true));
        assertEquals(expected.get("expected_text").asText(), llama2c.decode(prepend(1, ids), false).substring(3),
                "run.c strips the space after BOS");
    }

    @Test
    void encodesLikeHuggingFace() {
        List<String> sentences = List.of(
                "Once upon a time, there was a little girl named Lily.",
                "Hello world",
                " leading and  double  spaces ",
                "Lily's mom said, \"Let's go to the park.\"\nThey went.",
                "héllo 😀 ½ 日本 — naïve café",
                "a",
                " ",
                "");
        for (String s : sentences) {
            assertArrayEquals(hf.encode(s, false), llama2c.encode(s, false), s);
            assertArrayEquals(hf.encode(s, true), llama2c.encode(s, true), s);
        }
    }

    @Test
    void decodesLikeHuggingFace() {
        Random random = new Random(42);
        for (int n = 0; n < 300; n++) {
            int[] ids = new int[1 + random.nextInt(12)];
            for (int i = 0; i < ids.length; i++) {
                // Favour byte tokens so that invalid and split UTF-8 is common.
                ids[i] = random.nextBoolean() ? 3 + random.nextInt(256) : 3 + random.nextInt(509);
            }
            assertEquals(hf.decode(ids, true), llama2c.decode(ids, true), () -> java.util.Arrays.toString(ids));
        }
    }

    @Test
    void sameVocabularyAndSpecialTokensAsHuggingFace() {
        assertEquals(hf.vocabSize(), llama2c.vocabSize());
        for (int id = 0; id < hf.vocabSize(); id++) {
            assertEquals(hf.tokenText(id), llama2c.tokenText(id), "token " + id);
            assertEquals(hf.isSpecial(id), llama2c.isSpecial(id), "token " + id);
        }
        assertEquals(OptionalInt.of(1), llama2c.bosTokenId());
        assertEquals(Set.of(2), llama2c.eosTokenIds());
    }

    static int[] prepend(int first, int[] rest) {
        int[] out = new int[rest.length + 1];
        out[0] = first;
        System.arraycopy(rest, 0, out, 1, rest.length);
        return out;
    }
}
