package io.kvass.worker.grammar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class GrammarCompilerTest {
    /** Token i < 256 is byte i; 256 is EOS; 257.. are a few multi-byte tokens. */
    static final String[] WORDS = {"{\"", "\": ", "true", "12", "\"}", "ab"};
    static final TokenVocabulary BYTES = bytesVocabulary();
    static final int EOS = 256;

    static TokenVocabulary bytesVocabulary() {
        byte[][] tokens = new byte[257 + WORDS.length][];
        for (int b = 0; b < 256; b++) {
            tokens[b] = new byte[] {(byte) b};
        }
        for (int i = 0; i < WORDS.length; i++) {
            tokens[257 + i] = WORDS[i].getBytes(StandardCharsets.UTF_8);
        }
        return TokenVocabulary.of(tokens, new int[] {EOS});
    }

    static boolean accepts(GrammarSpec spec, String text) {
        GrammarMatcher m = new GrammarCompiler(BYTES).compile(spec).matcher();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            if (!m.allows(b & 0xff)) {
                return false;
            }
            m.accept(b & 0xff);
        }
        return m.allows(EOS);
    }

    static GrammarSpec schema(String json) {
        return GrammarSpec.jsonSchema(json);
    }

    @Test
    void objectsWithRequiredAndOptionalProperties() {
        GrammarSpec s = schema("""
                {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 2},
                 "c": {"type": "boolean"}}, "required": ["b"], "additionalProperties": false}""");
        assertTrue(accepts(s, "{\"b\":\"xy\"}"));
        assertTrue(accepts(s, "{\"a\": 3, \"b\": \"\", \"c\": false}"));
        assertTrue(accepts(s, "{\"a\":-12,\"b\":\"é\"}"));
        assertFalse(accepts(s, "{\"a\":3}"), "b is required");
        assertFalse(accepts(s, "{\"b\":\"xyz\"}"), "maxLength");
        assertFalse(accepts(s, "{\"b\":\"x\",\"a\":1}"), "declared order");
        assertFalse(accepts(s, "{\"b\":\"x\",}"));
        assertFalse(accepts(s, "{\"b\":\"x\"} "));
    }

    @Test
    void numbersWithBounds() {
        GrammarSpec ints = schema("{\"type\": \"integer\", \"minimum\": -15, \"exclusiveMaximum\": 120}");
        for (int v = -30; v <= 200; v++) {
            assertEquals(v >= -15 && v < 120, accepts(ints, Integer.toString(v)), "integer " + v);
        }
        assertFalse(accepts(ints, "007"));
        GrammarSpec nums = schema("{\"type\": \"number\", \"minimum\": -2, \"maximum\": 3}");
        for (String ok : new String[] {"-2", "-1.5", "-0.25", "0", "2.999", "3", "3.0", "0.5"}) {
            assertTrue(accepts(nums, ok), ok);
        }
        for (String bad : new String[] {"-2.5", "3.5", "4", "-3", "1e2", "01", "3.01"}) {
            assertFalse(accepts(nums, bad), bad);
        }
    }

    @Test
    void arraysEnumsRefsAndAnyOf() {
        GrammarSpec s = schema("""
                {"$defs": {"color": {"enum": ["red", "green", 7, null]}},
                 "type": "array", "items": {"anyOf": [{"$ref": "#/$defs/color"}, {"type": "null"}]},
                 "minItems": 1, "maxItems": 3}""");
        assertTrue(accepts(s, "[\"red\"]"));
        assertTrue(accepts(s, "[7, null,\"green\"]"));
        assertFalse(accepts(s, "[]"));
        assertFalse(accepts(s, "[7,7,7,7]"));
        assertFalse(accepts(s, "[\"blue\"]"));
    }

    @Test
    void stringsPatternsAndFormats() {
        GrammarSpec s = schema("{\"type\": \"string\", \"pattern\": \"^[a-c]+\\\"?\\\\d{2}$\"}");
        assertTrue(accepts(s, "\"ab12\""));
        assertTrue(accepts(s, "\"ab\\\"12\""), "a quote the pattern allows appears escaped");
        assertFalse(accepts(s, "\"ab\"12\""));
        GrammarSpec date = schema("{\"type\": \"string\", \"format\": \"date\"}");
        assertTrue(accepts(date, "\"2024-02-29\""));
        assertFalse(accepts(date, "\"2024-13-01\""));
        GrammarSpec escapes = schema("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 2}");
        assertTrue(accepts(escapes, "\"\\u00e9\\n\""));
        assertFalse(accepts(escapes, "\"\\ud83d\""), "no surrogate escapes");
        assertTrue(accepts(escapes, "\"😀x\""));
    }

    @Test
    void regexChoiceAndJsonObject() {
        assertTrue(accepts(GrammarSpec.regex("(yes|no)[!?]{0,2}"), "no?!"));
        assertFalse(accepts(GrammarSpec.regex("(yes|no)[!?]{0,2}"), "nope"));
        assertTrue(accepts(GrammarSpec.regex("\\w+@\\w+\\.com"), "a_1@b.com"));
        assertTrue(accepts(GrammarSpec.choice("[\"Paris\", \"Rome\"]"), "Rome"));
        assertFalse(accepts(GrammarSpec.choice("[\"Paris\", \"Rome\"]"), "Rom"));
        assertTrue(accepts(GrammarSpec.jsonObject(), "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}"));
        assertFalse(accepts(GrammarSpec.jsonObject(), "[1]"));
    }

    @Test
    void masksAllowMultiByteTokensAndEosOnlyWhenComplete() {
        TokenGrammar g = new GrammarCompiler(BYTES).compile(schema(
                "{\"type\": \"object\", \"properties\": {\"ab\": {\"type\": \"boolean\"}}, \"required\": [\"ab\"]}"));
        GrammarMatcher m = g.matcher();
        assertTrue(m.allows(257), "{\" is a prefix");
        assertFalse(m.allows(EOS));
        for (int t : new int[] {257, 262, 258, 259, '}'}) { // {" ab ": true }
            assertTrue(m.allows(t), "token " + t);
            m.accept(t);
        }
        assertTrue(m.allows(EOS));
        assertFalse(m.allows(' '));
        m.accept(EOS);
        assertTrue(m.allows(EOS));
        assertThrows(IllegalStateException.class, () -> m.accept('x'));
    }

    @Test
    void unsupportedKeywordsAreNamed() {
        GrammarCompiler c = new GrammarCompiler(BYTES);
        assertTrue(assertThrows(GrammarException.class, () -> c.compile(schema("{\"type\": \"integer\", \"multipleOf\": 3}")))
                .getMessage().contains("'multipleOf'"));
        assertTrue(assertThrows(GrammarException.class, () -> c.compile(schema(
                "{\"$defs\": {\"n\": {\"type\": \"object\", \"properties\": {\"next\": {\"$ref\": \"#/$defs/n\"}}}},"
                        + " \"$ref\": \"#/$defs/n\"}"))).getMessage().contains("recursive"));
        assertTrue(assertThrows(GrammarException.class, () -> c.compile(schema("{\"type\": \"string\", \"format\": \"email\"}")))
                .getMessage().contains("'format'"));
        assertTrue(assertThrows(GrammarException.class, () -> c.compile(schema("{\"type\": \"string\", \"minLength\": 3, "
                + "\"maxLength\": 2}"))).getMessage().contains("maxLength"));
        assertThrows(GrammarException.class, () -> c.compile(GrammarSpec.regex("a(?=b)")));
        assertThrows(GrammarException.class, () -> c.compile(schema("{not json")));
    }

    @Test
    void compiledGrammarsAreCachedPerSpec() {
        GrammarCompiler c = new GrammarCompiler(BYTES);
        assertTrue(c.compile(schema("{\"type\": \"boolean\"}")) == c.compile(schema("{\"type\": \"boolean\"}")));
    }
}
