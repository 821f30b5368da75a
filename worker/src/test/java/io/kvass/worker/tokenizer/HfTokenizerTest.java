package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class HfTokenizerTest {

    private static Tokenizer stories;

    @BeforeAll
    static void load() {
        stories = Fixtures.tokenizer("models/stories260K");
    }

    @Test
    void picksHfTokenizerForTokenizerJson() {
        assertInstanceOf(HfTokenizer.class, stories);
    }

    @Test
    void decodesTheReferenceGenerationToItsText() {
        JsonNode expected = Fixtures.json("models/stories260K/expected.json");
        int[] ids = Fixtures.ints(expected.get("greedy_ids"));
        assertEquals(expected.get("expected_text").asText(), stories.decode(ids, true));
        // After BOS the tokenizer strips the first space too, whether or not BOS is shown.
        int[] withBos = new int[ids.length + 1];
        withBos[0] = 1;
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        assertEquals(expected.get("expected_text").asText(), stories.decode(withBos, true));
    }

    @Test
    void addSpecialTokensIsPerCall() {
        int[] plain = stories.encode("Hello world", false);
        int[] withBos = stories.encode("Hello world", true);
        assertArrayEquals(new int[] {346, 306, 414, 263, 304, 341}, plain);
        assertEquals(plain.length + 1, withBos.length);
        assertEquals(1, withBos[0]);
        assertArrayEquals(plain, stories.encode("Hello world", false));
    }

    @Test
    void longInputIsNotTruncated() {
        // DJL truncates to 512 tokens unless told otherwise.
        int[] one = stories.encode("hello", false);
        assertEquals(1000 * one.length, stories.encode(String.join(" ", java.util.Collections.nCopies(1000, "hello")), false).length);
    }

    @Test
    void byteFallbackRoundTrips() {
        String text = "héllo 😀 ½ 日本";
        assertEquals(text, stories.decode(stories.encode(text, true), true));
    }

    @Test
    void specialTokensAndVocabulary() {
        assertEquals(512, stories.vocabSize());
        assertEquals(OptionalInt.of(1), stories.bosTokenId());
        assertEquals(Set.of(2), stories.eosTokenIds());
        assertTrue(stories.isSpecial(1));
        assertTrue(stories.isSpecial(2));
        assertFalse(stories.isSpecial(403));
        assertFalse(stories.isSpecial(-1));
        assertEquals("<s>", stories.tokenText(1));
        assertEquals("<0x0A>", stories.tokenText(13));
        assertTrue(stories.tokenText(403).startsWith("\u2581"), stories.tokenText(403));
        assertThrows(IndexOutOfBoundsException.class, () -> stories.tokenText(512));
    }

    @Test
    void unknownIdsDecodeToNothingAndNegativeIdsAreRejected() {
        assertEquals(stories.decode(new int[] {403}, true), stories.decode(new int[] {403, 100_000}, true));
        assertEquals("", stories.decode(new int[0], true));
        var e = assertThrows(IllegalArgumentException.class, () -> stories.decode(new int[] {403, -5}, true));
        assertTrue(e.getMessage().contains("-5"), e.getMessage());
    }

    @Test
    void llama3AndQwen3SpecialTokens() {
        Tokenizer llama3 = Fixtures.tokenizer("tokenizers/llama3");
        Tokenizer qwen3 = Fixtures.tokenizer("tokenizers/qwen3");
        assertEquals(128256, llama3.vocabSize());
        assertEquals(OptionalInt.of(128000), llama3.bosTokenId());
        assertEquals(Set.of(128001), llama3.eosTokenIds());
        // This tokenizer.json's post-processor is plain ByteLevel (no BOS template), so HF adds nothing.
        assertArrayEquals(llama3.encode("Hi", false), llama3.encode("Hi", true));
        assertEquals("<|eot_id|>", llama3.tokenText(128009));
        assertTrue(llama3.isSpecial(128009));

        assertEquals(OptionalInt.empty(), qwen3.bosTokenId());
        assertEquals(Set.of(151645), qwen3.eosTokenIds());
        assertArrayEquals(qwen3.encode("Hi", false), qwen3.encode("Hi", true), "Qwen3 adds no BOS");
    }
}
