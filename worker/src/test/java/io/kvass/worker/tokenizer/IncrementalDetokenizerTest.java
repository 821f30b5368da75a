package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class IncrementalDetokenizerTest {

    private static Tokenizer stories;
    private static Tokenizer llama2c;
    private static Tokenizer llama3;
    private static Tokenizer qwen3;

    /** Emoji (incl. ZWJ sequences and flags), CJK and accents: characters spread over several byte tokens. */
    private static final String MULTI_BYTE =
            "Hello 😀 world! 日本語のテキストです。 🇺🇸👨‍👩‍👧 ½ naïve café 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✅ 한국어 ελληνικά";

    @BeforeAll
    static void load() {
        stories = Fixtures.tokenizer("models/stories260K");
        llama2c = Fixtures.tokenizer("models/stories260K-llama2c");
        llama3 = Fixtures.tokenizer("tokenizers/llama3");
        qwen3 = Fixtures.tokenizer("tokenizers/qwen3");
    }

    /** Feeds every id; returns the pieces, the last one being flush()'s. */
    private static List<String> stream(IncrementalDetokenizer detok, int[] ids) {
        List<String> pieces = new ArrayList<>();
        for (int id : ids) {
            pieces.add(detok.next(id));
        }
        pieces.add(detok.flush());
        return pieces;
    }

    private static List<String> stream(Tokenizer tokenizer, int[] ids, boolean skipSpecial) {
        return stream(new IncrementalDetokenizer(tokenizer, skipSpecial), ids);
    }

    @Test
    void reproducesTheReferenceTextPieceByPiece() {
        JsonNode expected = Fixtures.json("models/stories260K/expected.json");
        int[] ids = Fixtures.ints(expected.get("greedy_ids"));
        for (Tokenizer t : List.of(stories, llama2c)) {
            List<String> pieces = stream(t, ids, true);
            assertEquals(expected.get("expected_text").asText(), String.join("", pieces), t.getClass().getSimpleName());
            assertEquals(" upon", pieces.get(1), "a word keeps its space after the first");
            // With BOS as prompt context the first word loses its space just as in decode([BOS, ...]).
            assertEquals(expected.get("expected_text").asText(),
                    String.join("", stream(new IncrementalDetokenizer(t, new int[] {1}, true), ids)));
        }
    }

    @Test
    void neverSplitsACharacter() {
        for (Tokenizer t : List.of(llama3, qwen3, stories, llama2c)) {
            int[] ids = t.encode(MULTI_BYTE, false);
            List<String> pieces = stream(t, ids, true);
            String name = t.getClass().getSimpleName() + " " + t.vocabSize();
            assertEquals(t.decode(ids, true), String.join("", pieces), name);
            assertEquals(MULTI_BYTE, String.join("", pieces), name);
            assertTrue(pieces.subList(0, ids.length).contains(""), name + ": some character spans several tokens");
            for (String piece : pieces) {
                assertFalse(piece.contains("\uFFFD"), name + ": " + pieces);
                assertFalse(!piece.isEmpty() && Character.isLowSurrogate(piece.charAt(0)), name + ": " + pieces);
            }
        }
    }

    @Test
    void continuesAPrompt() {
        for (Tokenizer t : List.of(llama3, qwen3, stories, llama2c)) {
            int[] all = t.encode("The answer is: 日本 😀 is here", false);
            int split = 3;
            int[] prompt = Arrays.copyOf(all, split);
            int[] generated = Arrays.copyOfRange(all, split, all.length);
            String text = String.join("", stream(new IncrementalDetokenizer(t, prompt, true), generated));
            assertEquals(t.decode(all, true).substring(t.decode(prompt, true).length()), text);
        }
    }

    @Test
    void heldBytesAreReleasedByFlush() {
        for (Tokenizer t : List.of(llama3, qwen3, stories, llama2c)) {
            int[] ids = t.encode(MULTI_BYTE, false);
            int cutMidCharacter = 0;
            for (int n = 1; n <= ids.length; n++) { // every prefix, so generation stops mid-character too
                int[] prefix = Arrays.copyOf(ids, n);
                IncrementalDetokenizer detok = new IncrementalDetokenizer(t, true);
                StringBuilder text = new StringBuilder();
                for (int id : prefix) {
                    text.append(detok.next(id));
                }
                assertFalse(text.toString().contains("\uFFFD"));
                text.append(detok.flush());
                assertEquals(t.decode(prefix, true), text.toString());
                assertEquals("", detok.flush());
                cutMidCharacter += text.toString().endsWith("\uFFFD") ? 1 : 0;
            }
            assertTrue(cutMidCharacter > 0, t.vocabSize() + ": some prefix ends mid-character");
        }
    }

    @Test
    void specialTokensMidStream() {
        for (Tokenizer t : List.of(stories, llama2c)) {
            int[] ids = {1, 403, 407, 2, 1, 403, 2, 13, 403, 0, 261};
            for (boolean skip : new boolean[] {true, false}) {
                assertEquals(t.decode(ids, skip), String.join("", stream(t, ids, skip)), t + " skip=" + skip);
            }
        }
        int[] llama = llama3.encode("Hi<|eot_id|> there<|start_header_id|>x", false);
        for (boolean skip : new boolean[] {true, false}) {
            assertEquals(llama3.decode(llama, skip), String.join("", stream(llama3, llama, skip)));
        }
    }

    @Test
    void matchesFullDecodeOnRandomSequences() {
        Random random = new Random(7);
        for (Tokenizer t : List.of(stories, llama2c)) {
            for (int n = 0; n < 200; n++) {
                int[] ids = new int[1 + random.nextInt(20)];
                for (int i = 0; i < ids.length; i++) {
                    int r = random.nextInt(10);
                    ids[i] = r == 0 ? random.nextInt(3) : r < 5 ? 3 + random.nextInt(256) : random.nextInt(512);
                }
                boolean skip = random.nextBoolean();
                assertEquals(t.decode(ids, skip), String.join("", stream(t, ids, skip)),
                        () -> t.getClass().getSimpleName() + " skip=" + skip + " " + Arrays.toString(ids));
            }
        }
    }
}
