package io.kvass.worker.grammar;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A JSON Schema (draft 2020-12's common subset, as OpenAI's strict mode and pydantic produce it) as the
 * language of the JSON documents kvass lets a model write for it.
 *
 * <p>The documents are JSON in one layout: no whitespace except an optional single space after {@code :} and
 * {@code ,}; object properties in the schema's order (required ones always, optional ones possibly left out);
 * no properties beyond the declared ones (except for a schema with no {@code properties} whose
 * {@code additionalProperties} is a schema: a map); numbers of at most 16 integer and 16 fraction digits;
 * free JSON ({@code {}}, {@code json_object}) nested at most {@link #ANY_DEPTH} deep. Every such document is
 * valid against the schema. Keywords that would need more (a recursive {@code $ref}, {@code multipleOf},
 * {@code uniqueItems}, ...) are refused by name.
 */
final class JsonSchemaCompiler {
    static final int ANY_DEPTH = 4;
    static final Rx COLON = Rx.seq(Rx.literal(":"), Rx.optional(Rx.literal(" ")));
    static final Rx COMMA = Rx.seq(Rx.literal(","), Rx.optional(Rx.literal(" ")));

    private static final ObjectMapper JSON = new ObjectMapper();
    /** Annotations: they describe, they do not constrain. */
    private static final Set<String> IGNORED = Set.of("title", "description", "default", "examples", "$comment",
            "$schema", "$id", "readOnly", "writeOnly", "deprecated", "$defs", "definitions", "strict", "name",
            "discriminator", "contentMediaType", "contentEncoding");
    private static final Set<String> KNOWN = Set.of("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
            "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
            "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "uniqueItems", "minProperties", "maxProperties", "nullable");
    private static final Map<String, String> FORMATS = Map.of(
            "date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
            "time", "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
            "date-time", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                    + "(\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
            "uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])");

    private final JsonNode root;
    private final Deque<String> refs = new ArrayDeque<>();

    private JsonSchemaCompiler(JsonNode root) {
        this.root = root;
    }

    /** @throws GrammarException naming the keyword (and where) it cannot compile */
    static Rx compile(JsonNode schema) {
        return new JsonSchemaCompiler(schema).value(schema, "#");
    }

    /** Any JSON value, containers nested at most {@code depth} deep. */
    static Rx anyValue(int depth) {
        List<Rx> options = new ArrayList<>(List.of(JsonStrings.string(0, -1), NumberRanges.anyNumber(),
                Rx.literal("true"), Rx.literal("false"), Rx.literal("null")));
        if (depth > 0) {
            options.add(anyObject(depth));
            options.add(anyArray(depth));
        }
        return new Rx.Alt(options);
    }

    /** Any JSON object, values nested at most {@code depth - 1} deeper. */
    static Rx anyObject(int depth) {
        return map(anyValue(depth - 1));
    }

    private static Rx anyArray(int depth) {
        return array(anyValue(depth - 1), 0, -1);
    }

    private static Rx map(Rx value) {
        Rx member = Rx.seq(JsonStrings.string(0, -1), COLON, value);
        return Rx.seq(Rx.literal("{"), new Rx.SepList(member, COMMA, 0, -1), Rx.literal("}"));
    }

    private static Rx array(Rx item, int min, int max) {
        return Rx.seq(Rx.literal("["), new Rx.SepList(item, COMMA, min, max), Rx.literal("]"));
    }

    private Rx value(JsonNode s, String at) {
        if (s.isBoolean()) {
            if (!s.booleanValue()) {
                throw new GrammarException("the schema at " + at + " is false: no value is valid");
            }
            return anyValue(ANY_DEPTH);
        }
        if (!s.isObject()) {
            throw new GrammarException("the schema at " + at + " must be an object or a boolean");
        }
        for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!KNOWN.contains(key) && !IGNORED.contains(key)) {
                throw new GrammarException("unsupported JSON Schema keyword '" + key + "' at " + at);
            }
        }
        if (s.has("$ref")) {
            only(s, at, "$ref");
            return ref(s.get("$ref").asText(), at);
        }
        if (s.has("allOf")) {
            only(s, at, "allOf");
            JsonNode all = s.get("allOf");
            if (!all.isArray() || all.size() != 1) {
                throw new GrammarException("unsupported JSON Schema keyword 'allOf' at " + at
                        + " (only a single sub-schema is supported)");
            }
            return value(all.get(0), at + "/allOf/0");
        }
        for (String key : List.of("anyOf", "oneOf")) {
            if (s.has(key)) {
                only(s, at, key);
                JsonNode options = s.get(key);
                if (!options.isArray() || options.isEmpty()) {
                    throw new GrammarException("'" + key + "' at " + at + " must be a non-empty array");
                }
                // NOTE: oneOf is compiled as anyOf: its options are rarely overlapping in practice.
                List<Rx> alts = new ArrayList<>();
                for (int i = 0; i < options.size(); i++) {
                    alts.add(value(options.get(i), at + "/" + key + "/" + i));
                }
                return new Rx.Alt(alts);
            }
        }
        if (s.has("const")) {
            return Rx.literal(compact(s.get("const")));
        }
        if (s.has("enum")) {
            JsonNode values = s.get("enum");
            if (!values.isArray() || values.isEmpty()) {
                throw new GrammarException("'enum' at " + at + " must be a non-empty array");
            }
            List<Rx> alts = new ArrayList<>();
            values.forEach(v -> alts.add(Rx.literal(compact(v))));
            return new Rx.Alt(alts);
        }
        List<String> types = types(s, at);
        List<Rx> alts = new ArrayList<>();
        for (String type : types) {
            alts.add(switch (type) {
                case "object" -> object(s, at);
                case "array" -> array(s, at);
                case "string" -> string(s, at);
                case "integer" -> integer(s, at);
                case "number" -> number(s, at);
                case "boolean" -> Rx.alt(Rx.literal("true"), Rx.literal("false"));
                case "null" -> Rx.literal("null");
                default -> throw new GrammarException("unknown type '" + type + "' at " + at);
            });
        }
        if (s.path("nullable").asBoolean(false) && !types.contains("null")) {
            alts.add(Rx.literal("null"));
        }
        return alts.size() == 1 ? alts.getFirst() : new Rx.Alt(alts);
    }

    /** The schema's types; without {@code type}, what its keywords imply (or any value). */
    private static List<String> types(JsonNode s, String at) {
        JsonNode type = s.get("type");
        if (type == null) {
            if (s.has("properties") || s.has("additionalProperties")) {
                return List.of("object");
            }
            if (s.has("items") || s.has("prefixItems")) {
                return List.of("array");
            }
            if (s.has("pattern") || s.has("minLength") || s.has("maxLength") || s.has("format")) {
                return List.of("string");
            }
            if (s.has("minimum") || s.has("maximum") || s.has("exclusiveMinimum") || s.has("exclusiveMaximum")) {
                return List.of("number");
            }
            return List.of("string", "number", "boolean", "null", "object", "array");
        }
        if (type.isTextual()) {
            return List.of(type.textValue());
        }
        if (type.isArray() && !type.isEmpty()) {
            List<String> out = new ArrayList<>();
            type.forEach(t -> out.add(t.asText()));
            return out;
        }
        throw new GrammarException("'type' at " + at + " must be a string or a non-empty array");
    }

    private static void only(JsonNode s, String at, String keyword) {
        for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!key.equals(keyword) && !IGNORED.contains(key)) {
                throw new GrammarException("unsupported JSON Schema keyword '" + key + "' next to '" + keyword
                        + "' at " + at + " (move it into the sub-schemas)");
            }
        }
    }

    private Rx ref(String ref, String at) {
        if (!ref.startsWith("#")) {
            throw new GrammarException("unsupported JSON Schema keyword '$ref' at " + at
                    + ": only references inside the schema (#/...) are supported, got " + ref);
        }
        if (refs.contains(ref)) {
            throw new GrammarException("unsupported JSON Schema keyword '$ref' at " + at
                    + ": recursive references (" + ref + ") are not supported");
        }
        JsonNode target = root.at(ref.substring(1).isEmpty() ? "" : ref.substring(1));
        if (target.isMissingNode()) {
            throw new GrammarException("'$ref' at " + at + " points to nothing: " + ref);
        }
        refs.push(ref);
        try {
            return value(target, ref);
        } finally {
            refs.pop();
        }
    }

    private Rx object(JsonNode s, String at) {
        reject(s, at, "minProperties", "maxProperties");
        JsonNode props = s.path("properties");
        Set<String> required = new HashSet<>();
        s.path("required").forEach(r -> required.add(r.asText()));
        JsonNode additional = s.get("additionalProperties");
        if (props.isEmpty() && required.isEmpty()) {
            if (additional != null && additional.isObject()) {
                return map(value(additional, at + "/additionalProperties"));
            }
            return additional != null && additional.isBoolean() && !additional.booleanValue()
                    ? Rx.literal("{}") : anyObject(ANY_DEPTH);
        }
        List<Rx> members = new ArrayList<>();
        List<Boolean> flags = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = props.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> p = it.next();
            Rx value = value(p.getValue(), at + "/properties/" + p.getKey());
            members.add(Rx.seq(Rx.literal(compact(JSON.getNodeFactory().textNode(p.getKey()))), COLON, value));
            flags.add(required.remove(p.getKey()));
        }
        if (!required.isEmpty()) {
            throw new GrammarException("'required' at " + at + " names properties that are not in 'properties': "
                    + required);
        }
        return Rx.seq(Rx.literal("{"), new Rx.Members(members, flags, COMMA), Rx.literal("}"));
    }

    private Rx array(JsonNode s, String at) {
        if (s.path("uniqueItems").asBoolean(false)) {
            throw new GrammarException("unsupported JSON Schema keyword 'uniqueItems' at " + at);
        }
        int min = count(s, "minItems", at, 0), max = count(s, "maxItems", at, -1);
        JsonNode items = s.get("items");
        if (s.has("prefixItems")) {
            JsonNode prefix = s.get("prefixItems");
            if (items != null && !(items.isBoolean() && !items.booleanValue())) {
                throw new GrammarException("unsupported JSON Schema keyword 'prefixItems' at " + at
                        + " (only with \"items\": false)");
            }
            List<Rx> parts = new ArrayList<>();
            parts.add(Rx.literal("["));
            for (int i = 0; i < prefix.size(); i++) {
                if (i > 0) {
                    parts.add(COMMA);
                }
                parts.add(value(prefix.get(i), at + "/prefixItems/" + i));
            }
            parts.add(Rx.literal("]"));
            return new Rx.Seq(parts);
        }
        Rx item = items == null ? anyValue(ANY_DEPTH - 1) : value(items, at + "/items");
        if (max >= 0 && max < min) {
            throw new GrammarException("maxItems < minItems at " + at);
        }
        return array(item, min, max);
    }

    private Rx string(JsonNode s, String at) {
        int min = count(s, "minLength", at, 0), max = count(s, "maxLength", at, -1);
        if (max >= 0 && max < min) {
            throw new GrammarException("maxLength < minLength at " + at);
        }
        String pattern = s.has("pattern") ? s.get("pattern").asText() : null;
        if (s.has("format")) {
            String format = s.get("format").asText();
            pattern = FORMATS.get(format);
            if (pattern == null) {
                throw new GrammarException("unsupported JSON Schema keyword 'format' at " + at + ": '" + format
                        + "' (supported: " + new java.util.TreeSet<>(FORMATS.keySet()) + ")");
            }
            if (s.has("pattern")) {
                throw new GrammarException("unsupported JSON Schema keyword 'pattern' together with 'format' at " + at);
            }
        }
        if (pattern != null) {
            if (s.has("minLength") || s.has("maxLength")) {
                throw new GrammarException("unsupported JSON Schema keyword 'minLength'/'maxLength' together with "
                        + "'pattern' at " + at);
            }
            try {
                return Rx.seq(Rx.literal("\""), RegexParser.jsonString(pattern), Rx.literal("\""));
            } catch (GrammarException e) {
                throw new GrammarException("'pattern' at " + at + ": " + e.getMessage());
            }
        }
        if (max > 100_000) {
            throw new GrammarException("'maxLength' at " + at + " is too large (at most 100000 is supported)");
        }
        return JsonStrings.string(min, max);
    }

    private Rx integer(JsonNode s, String at) {
        reject(s, at, "multipleOf");
        long lo = Long.MIN_VALUE, hi = Long.MAX_VALUE;
        if (s.has("minimum")) {
            lo = (long) Math.ceil(bound(s, "minimum", at));
        }
        if (s.has("exclusiveMinimum")) {
            lo = Math.max(lo, (long) Math.floor(bound(s, "exclusiveMinimum", at)) + 1);
        }
        if (s.has("maximum")) {
            hi = (long) Math.floor(bound(s, "maximum", at));
        }
        if (s.has("exclusiveMaximum")) {
            hi = Math.min(hi, (long) Math.ceil(bound(s, "exclusiveMaximum", at)) - 1);
        }
        if (lo == Long.MIN_VALUE && hi == Long.MAX_VALUE) {
            return NumberRanges.anyInteger();
        }
        if (Math.max(lo, -NumberRanges.LIMIT) > Math.min(hi, NumberRanges.LIMIT)) {
            throw new GrammarException("no integer lies between the bounds at " + at);
        }
        return NumberRanges.integers(lo, hi);
    }

    private Rx number(JsonNode s, String at) {
        reject(s, at, "multipleOf");
        if (!s.has("minimum") && !s.has("maximum") && !s.has("exclusiveMinimum") && !s.has("exclusiveMaximum")) {
            return NumberRanges.anyNumber();
        }
        long lo = Long.MIN_VALUE, hi = Long.MAX_VALUE;
        boolean loEx = false, hiEx = false;
        if (s.has("minimum")) {
            lo = integral(s, "minimum", at);
        }
        if (s.has("exclusiveMinimum")) {
            long v = integral(s, "exclusiveMinimum", at);
            if (v >= lo) {
                lo = v;
                loEx = true;
            }
        }
        if (s.has("maximum")) {
            hi = integral(s, "maximum", at);
        }
        if (s.has("exclusiveMaximum")) {
            long v = integral(s, "exclusiveMaximum", at);
            if (v <= hi) {
                hi = v;
                hiEx = true;
            }
        }
        if (lo > hi || (lo == hi && (loEx || hiEx))) {
            throw new GrammarException("no number lies between the bounds at " + at);
        }
        return NumberRanges.numbers(lo, loEx, hi, hiEx);
    }

    private static double bound(JsonNode s, String key, String at) {
        JsonNode v = s.get(key);
        if (!v.isNumber()) {
            throw new GrammarException("'" + key + "' at " + at + " must be a number");
        }
        return v.doubleValue();
    }

    private static long integral(JsonNode s, String key, String at) {
        double v = bound(s, key, at);
        if (v != Math.rint(v) || Math.abs(v) > NumberRanges.LIMIT) {
            throw new GrammarException("unsupported JSON Schema keyword '" + key + "' at " + at
                    + ": a number's bounds must be whole numbers (got " + s.get(key) + ")");
        }
        return (long) v;
    }

    private static int count(JsonNode s, String key, String at, int absent) {
        JsonNode v = s.get(key);
        if (v == null) {
            return absent;
        }
        if (!v.canConvertToInt() || v.intValue() < 0 || !v.isIntegralNumber()) {
            throw new GrammarException("'" + key + "' at " + at + " must be a non-negative integer");
        }
        if (v.intValue() > 100_000) {
            throw new GrammarException("'" + key + "' at " + at + " is too large");
        }
        return v.intValue();
    }

    private static void reject(JsonNode s, String at, String... keys) {
        for (String key : keys) {
            if (s.has(key)) {
                throw new GrammarException("unsupported JSON Schema keyword '" + key + "' at " + at);
            }
        }
    }

    static String compact(JsonNode value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new GrammarException("cannot write " + value);
        }
    }
}
