package io.kvass.worker.grammar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The independent check of the masks, over random schemas and random walks with stories260K's real
 * vocabulary (512 tokens: byte fallback plus merged pieces). At every step, for every token:
 * the mask allows it exactly when an oracle says the text stays a prefix of a document of the schema's language.
 * The oracle shares no code with the engine: the schema is translated here into a {@link java.util.regex}
 * pattern (integer ranges spelled out value by value, not split into digit ranges) and a prefix is viable when
 * the matcher matches or {@link Matcher#hitEnd() hits the end} of the input. Every completed walk is then
 * parsed by Jackson and validated against the schema by networknt's JSON Schema validator, so the language
 * itself is checked against the standard, not only against the oracle.
 */
class GrammarPropertyTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);

    @Test
    void masksAgreeWithAnIndependentOracleOnRandomSchemasAndWalks() throws Exception {
        Tokenizer tokenizer = Tokenizer.load(Fixtures.stories260K());
        TokenVocabulary vocab = TokenVocabulary.of(tokenizer, 512);
        int eos = tokenizer.eosTokenIds().iterator().next();
        GrammarCompiler compiler = new GrammarCompiler(vocab);
        Random random = new Random(17);
        int schemas = 60, walksPerSchema = 6, checkedTokens = 0, documents = 0;
        for (int i = 0; i < schemas; i++) {
            ObjectNode schema = randomSchema(random, 0);
            String schemaText = schema.toString();
            Pattern oracle = Pattern.compile(regex(schema), Pattern.DOTALL);
            TokenGrammar grammar = compiler.compile(GrammarSpec.jsonSchema(schemaText));
            Schema validator = VALIDATORS.getSchema(schemaText);
            for (int w = 0; w < walksPerSchema; w++) {
                GrammarMatcher m = grammar.matcher();
                ByteArrayOutputStream text = new ByteArrayOutputStream();
                boolean ended = false;
                for (int step = 0; step < 400 && !ended; step++) {
                    List<Integer> allowed = new ArrayList<>();
                    for (int t = 0; t < 512; t++) {
                        boolean expected;
                        if (t == eos) {
                            expected = oracle.matcher(decode(text.toByteArray())).matches();
                        } else if (vocab.bytes(t) == null) {
                            expected = false;
                        } else {
                            expected = viable(oracle, concat(text.toByteArray(), vocab.bytes(t)));
                        }
                        if (m.allows(t) != expected) {
                            fail("schema " + schemaText + "\nregex " + oracle + "\nafter \"" + decode(text.toByteArray())
                                    + "\": token " + t + " " + tokenizer.tokenText(t) + " mask " + m.allows(t)
                                    + ", oracle " + expected);
                        }
                        checkedTokens++;
                        if (expected) {
                            allowed.add(t);
                        }
                    }
                    assertTrue(!allowed.isEmpty(), "a live state allows some token");
                    int t = allowed.contains(eos) && random.nextInt(3) > 0 ? eos
                            : allowed.get(random.nextInt(allowed.size()));
                    m.accept(t);
                    if (t == eos) {
                        ended = true;
                    } else {
                        text.write(vocab.bytes(t));
                    }
                }
                if (!ended) {
                    continue; // a long walk (random digits and strings); its prefixes were all checked
                }
                String doc = new String(text.toByteArray(), StandardCharsets.UTF_8);
                JsonNode parsed = JSON.readTree(doc);
                var errors = validator.validate(doc, InputFormat.JSON);
                assertTrue(errors.isEmpty(), "schema " + schemaText + "\ndocument " + doc + "\n" + errors);
                assertEquals(parsed, JSON.readTree(doc));
                documents++;
            }
        }
        assertTrue(documents > schemas * walksPerSchema / 2, "most walks complete a document: " + documents);
        assertTrue(checkedTokens > 100_000, "checked " + checkedTokens);
    }

    // ---- the oracle ----

    /** Whether {@code bytes} can be continued into a match: strict UTF-8, an unfinished last character completed. */
    static boolean viable(Pattern oracle, byte[] bytes) {
        byte[] completed = completeLastChar(bytes);
        if (completed == null) {
            return false;
        }
        String s;
        try {
            s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(completed)).toString();
        } catch (CharacterCodingException e) {
            return false;
        }
        Matcher m = oracle.matcher(s);
        return m.matches() || m.hitEnd();
    }

    /** Appends the smallest continuation bytes that finish a trailing partial UTF-8 sequence; null if none can. */
    static byte[] completeLastChar(byte[] b) {
        int i = b.length - 1, cont = 0;
        while (i >= 0 && (b[i] & 0xC0) == 0x80 && cont < 3) {
            i--;
            cont++;
        }
        if (i < 0) {
            return cont == 0 ? b : null;
        }
        int lead = b[i] & 0xff;
        int need = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                : lead >= 0xF0 && lead <= 0xF4 ? 4 : -1;
        if (need < 0 || cont + 1 > need) {
            return need < 0 && cont == 0 && lead < 0x80 ? b : (need < 0 ? null : b);
        }
        if (cont + 1 == need) {
            return b;
        }
        byte[] out = java.util.Arrays.copyOf(b, i + need);
        for (int k = b.length; k < out.length; k++) {
            // The second byte of E0/ED/F0/F4 sequences has a narrower range; pick its lowest valid value.
            int pos = k - i;
            int v = 0x80;
            if (pos == 1 && lead == 0xE0) {
                v = 0xA0;
            } else if (pos == 1 && lead == 0xF0) {
                v = 0x90;
            }
            out[k] = (byte) v;
        }
        return out;
    }

    static String decode(byte[] bytes) {
        return new String(bytes, StandardCharsets.UTF_8);
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static final String WS = " ?";
    private static final String CHAR = "(?:[^\"\\\\\\x00-\\x1f]|\\\\[\"\\\\/bfnrt]|\\\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}"
            + "|[dD][0-7][0-9a-fA-F]{2}))";

    /** The schema's documents as a java.util.regex pattern, written from the schema alone. */
    static String regex(JsonNode s) {
        if (s.has("anyOf")) {
            List<String> alts = new ArrayList<>();
            s.get("anyOf").forEach(o -> alts.add(regex(o)));
            return "(?:" + String.join("|", alts) + ")";
        }
        if (s.has("enum")) {
            List<String> alts = new ArrayList<>();
            s.get("enum").forEach(v -> alts.add(Pattern.quote(v.toString())));
            return "(?:" + String.join("|", alts) + ")";
        }
        return switch (s.get("type").asText()) {
            case "string" -> "\"" + CHAR + "{" + s.path("minLength").asInt(0) + ","
                    + (s.has("maxLength") ? s.get("maxLength").asInt() : "") + "}\"";
            case "boolean" -> "(?:true|false)";
            case "null" -> "null";
            case "integer" -> s.has("minimum") ? enumerate(s.get("minimum").asLong(), s.get("maximum").asLong(), "")
                    : "-?(?:0|[1-9][0-9]{0,15})";
            case "number" -> number(s);
            case "array" -> array(s);
            case "object" -> object(s);
            default -> throw new IllegalArgumentException(s.toString());
        };
    }

    private static String enumerate(long lo, long hi, String suffix) {
        List<String> alts = new ArrayList<>();
        for (long v = lo; v <= hi; v++) {
            alts.add(Long.toString(v) + suffix);
        }
        return alts.isEmpty() ? "(?!)" : "(?:" + String.join("|", alts) + ")";
    }

    /** Numbers between integer bounds, as the engine's documented layout: no exponent, fractions end non-zero. */
    private static String number(JsonNode s) {
        if (!s.has("minimum") && !s.has("exclusiveMinimum")) {
            return "-?(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,2})?";
        }
        boolean loEx = s.has("exclusiveMinimum"), hiEx = s.has("exclusiveMaximum");
        long lo = loEx ? s.get("exclusiveMinimum").asLong() : s.get("minimum").asLong();
        long hi = hiEx ? s.get("exclusiveMaximum").asLong() : s.get("maximum").asLong();
        List<String> alts = new ArrayList<>();
        for (long v = lo; v <= hi; v++) {
            if (!(loEx && v == lo) && !(hiEx && v == hi)) {
                alts.add(v + "(?:\\.0)?");
            }
        }
        String frac = "\\.[0-9]{0,15}[1-9]";
        for (long d = lo; d < hi; d++) { // values strictly between d and d + 1
            alts.add(d >= 0 ? d + frac : "-" + (-d - 1) + frac);
        }
        return "(?:" + String.join("|", alts) + ")";
    }

    private static String array(JsonNode s) {
        String item = regex(s.get("items"));
        int min = s.path("minItems").asInt(0), max = s.get("maxItems").asInt();
        List<String> alts = new ArrayList<>();
        for (int n = min; n <= max; n++) {
            List<String> items = new ArrayList<>();
            for (int k = 0; k < n; k++) {
                items.add(item);
            }
            alts.add("\\[" + String.join("," + WS, items) + "\\]");
        }
        return "(?:" + String.join("|", alts) + ")";
    }

    private static String object(JsonNode s) {
        List<String> names = new ArrayList<>();
        s.get("properties").fieldNames().forEachRemaining(names::add);
        List<String> required = new ArrayList<>();
        s.path("required").forEach(r -> required.add(r.asText()));
        return "\\{" + members(s, names, required, 0, false) + "\\}";
    }

    /** Members {@code i..} in order, the required ones always, commas between; {@code after}: one was written. */
    private static String members(JsonNode s, List<String> names, List<String> required, int i, boolean after) {
        if (i == names.size()) {
            return "";
        }
        String name = names.get(i);
        String member = (after ? "," + WS : "") + Pattern.quote("\"" + name + "\"") + ":" + WS
                + regex(s.get("properties").get(name));
        String with = member + members(s, names, required, i + 1, true);
        if (required.contains(name)) {
            return with;
        }
        return "(?:" + with + "|" + members(s, names, required, i + 1, after) + ")";
    }

    // ---- random schemas ----

    static ObjectNode randomSchema(Random r, int depth) {
        int kind = r.nextInt(depth >= 2 ? 7 : 10);
        ObjectNode s = F.objectNode();
        switch (kind) {
            case 0 -> {
                s.put("type", "string");
                int min = r.nextInt(3);
                s.put("minLength", min);
                s.put("maxLength", min + r.nextInt(5));
            }
            case 1 -> {
                s.put("type", "integer");
                if (r.nextBoolean()) {
                    int lo = r.nextInt(40) - 25;
                    s.put("minimum", lo);
                    s.put("maximum", lo + r.nextInt(60));
                }
            }
            case 2 -> {
                s.put("type", "number");
                if (r.nextInt(3) > 0) {
                    int lo = r.nextInt(20) - 10;
                    int hi = lo + 1 + r.nextInt(12);
                    s.put(r.nextBoolean() ? "minimum" : "exclusiveMinimum", lo);
                    s.put(r.nextBoolean() ? "maximum" : "exclusiveMaximum", hi);
                }
            }
            case 3 -> s.put("type", r.nextBoolean() ? "boolean" : "null");
            case 4 -> {
                ArrayNode values = s.putArray("enum");
                values.add("red").add("a\"b").add(3).add(F.nullNode());
                if (r.nextBoolean()) {
                    values.add("green");
                }
            }
            case 5 -> {
                ArrayNode any = s.putArray("anyOf");
                any.add(randomSchema(r, depth + 1));
                any.add(randomSchema(r, depth + 1));
            }
            case 6 -> s.put("type", "boolean");
            case 7 -> {
                s.put("type", "array");
                s.set("items", randomSchema(r, depth + 1));
                int min = r.nextInt(2);
                s.put("minItems", min);
                s.put("maxItems", min + r.nextInt(3));
            }
            default -> {
                s.put("type", "object");
                ObjectNode props = s.putObject("properties");
                ArrayNode required = s.putArray("required");
                int n = 1 + r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    String name = "p" + i + (r.nextBoolean() ? "x" : "");
                    props.set(name, randomSchema(r, depth + 1));
                    if (r.nextBoolean()) {
                        required.add(name);
                    }
                }
                s.put("additionalProperties", false);
            }
        }
        return s;
    }
}
