package io.kvass.scheduler.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.scheduler.core.FinishReason;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Constrained decoding through the whole engine on stories260K: sampled outputs obey the schema; recompute rebuilds. */
class StructuredOutputThroughEngineTest {
    private static final String SCHEMA = """
            {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
             "age": {"type": "integer", "minimum": 0, "maximum": 120},
             "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
             "required": ["name", "age"], "additionalProperties": false}""";
    private static ModelReplica replica;

    @BeforeAll
    static void load() {
        replica = ModelReplica.load(ReplicaOptions.cpu(Fixtures.stories260K()));
    }

    @AfterAll
    static void close() {
        replica.close();
    }

    private static LocalEngine engine() {
        return LocalEngine.of(replica.backend(), replica.tokenizer(),
                new SchedulerConfig(32, 256, replica.maxModelLen(), SchedulingPolicy.FCFS, true));
    }

    private static List<Request> requests(int count) {
        List<Request> out = new ArrayList<>();
        int[] prompt = replica.tokenizer().encode("Once upon a time", true);
        for (int i = 0; i < count; i++) {
            SamplingParams p = SamplingParams.builder().temperature(1f).maxTokens(200).seed(100 + i)
                    .grammar(Optional.of(GrammarSpec.jsonSchema(SCHEMA))).build();
            out.add(Request.of("r" + i, prompt, p));
        }
        // An unconstrained neighbour shares every step.
        out.add(Request.of("free", prompt, SamplingParams.builder().temperature(1f).maxTokens(40).seed(5).build()));
        return out;
    }

    private static Map<String, String> texts(List<RequestOutput> outputs, Map<String, FinishReason> finishes) {
        Map<String, StringBuilder> text = new TreeMap<>();
        for (RequestOutput o : outputs) {
            text.computeIfAbsent(o.requestId(), k -> new StringBuilder()).append(o.text());
            o.finish().ifPresent(f -> finishes.put(o.requestId(), f.reason()));
        }
        Map<String, String> out = new TreeMap<>();
        text.forEach((k, v) -> out.put(k, v.toString()));
        return out;
    }

    @Test
    void sampledOutputsAreDocumentsOfTheSchema() throws Exception {
        Map<String, FinishReason> finishes = new TreeMap<>();
        Map<String, String> texts = texts(engine().generate(requests(24)), finishes);
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < 24; i++) {
            String text = texts.get("r" + i);
            assertEquals(FinishReason.STOP, finishes.get("r" + i), text);
            JsonNode doc = json.readTree(text);
            assertTrue(doc.get("name").isTextual() && doc.get("name").asText().codePointCount(0,
                    doc.get("name").asText().length()) <= 6, text);
            int age = doc.get("age").intValue();
            assertTrue(doc.get("age").isIntegralNumber() && age >= 0 && age <= 120, text);
            if (doc.has("tags")) {
                assertTrue(doc.get("tags").size() <= 3, text);
                doc.get("tags").forEach(t -> assertTrue(t.asText().equals("a") || t.asText().equals("b"), text));
            }
            doc.fieldNames().forEachRemaining(f -> assertTrue(List.of("name", "age", "tags").contains(f), text));
        }
        assertTrue(!texts.get("free").startsWith("{"), "the unconstrained row is not masked: " + texts.get("free"));
    }

    @Test
    void aRecomputedSequenceRebuildsItsGrammarStateAndContinuesExactly() {
        Map<String, FinishReason> ignored = new TreeMap<>();
        Map<String, String> straight = texts(engine().generate(requests(6)), ignored);

        LocalEngine engine = engine();
        requests(6).forEach(engine.core()::add);
        List<RequestOutput> outputs = new ArrayList<>();
        for (int step = 0; step < 7; step++) {
            outputs.addAll(engine.step());
        }
        // A worker failure: the worker forgets everything, the scheduler resubmits prompt + outputs.
        engine.core().scheduler().requeueAllRunning();
        engine.runner().reset();
        engine.runToCompletion(outputs::add);
        assertEquals(straight, texts(outputs, ignored));
    }
}
