package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** What {@link OpenAiStreamClient} makes of each SSE payload, and the per-request metrics derived from it. */
class ChunkHandlingTest {
    private static final long MS = 1_000_000L;

    private static RequestResult result(int outputLen) {
        RequestResult r = new RequestResult(new BenchRequest(0, new int[] {1, 2, 3}, null, 3, outputLen));
        r.startNs = 1000 * MS;
        return r;
    }

    @Test
    void completionsChunksUsageAndTimes() {
        RequestResult r = result(4);
        String chunk = "{\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"%s\",\"finish_reason\":%s}],"
                + "\"usage\":null}";
        OpenAiStreamClient.handleChunk(r, chunk.formatted("a", "null"), 1100 * MS);
        OpenAiStreamClient.handleChunk(r, chunk.formatted("bc", "null"), 1120 * MS);
        OpenAiStreamClient.handleChunk(r, chunk.formatted("d", "null"), 1150 * MS);
        OpenAiStreamClient.handleChunk(r, chunk.formatted("e", "\"length\""), 1160 * MS);
        OpenAiStreamClient.handleChunk(r, chunk.formatted("", "\"length\""), 1161 * MS); // finish only: no token
        assertFalse(r.usageReported());
        assertEquals(4, r.outputTokens(), "without usage, one token per chunk");
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
                + "\"total_tokens\":7}}", 1162 * MS);
        r.endNs = 1190 * MS;
        r.sawDone = true;
        assertTrue(r.success());
        assertEquals(4, r.chunkCount());
        assertEquals(3, r.promptTokens());
        assertEquals(4, r.outputTokens());
        assertEquals(5, r.generatedChars);
        assertEquals(100.0, r.ttftMs(), 1e-9);
        assertArrayEquals(new double[] {20, 30, 10}, r.itlsMs(), 1e-9);
        assertEquals(190.0, r.e2eMs(), 1e-9);
        assertEquals((190.0 - 100.0) / 3, r.tpotMs(), 1e-9);
    }

    @Test
    void chatRoleChunkIsNotAToken() {
        RequestResult r = result(2);
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
                1001 * MS);
        assertEquals(0, r.chunkCount());
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}", 1050 * MS);
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"}}]}",
                1070 * MS);
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}",
                1071 * MS);
        assertEquals(2, r.chunkCount());
        assertEquals(50.0, r.ttftMs(), 1e-9);
    }

    @Test
    void errorEventsAndBadJsonFail() {
        RequestResult r = result(2);
        OpenAiStreamClient.handleChunk(r, "{\"error\":{\"message\":\"KV cache full\",\"type\":\"x\",\"code\":500}}", MS);
        assertFalse(r.success());
        assertTrue(r.error().contains("KV cache full"), r.error());
        RequestResult bad = result(2);
        OpenAiStreamClient.handleChunk(bad, "{not json", MS);
        assertTrue(bad.error().startsWith("bad chunk"), bad.error());
        assertEquals("no token in the response", result(1).error());
    }

    @Test
    void singleTokenHasNoTpot() {
        RequestResult r = result(1);
        OpenAiStreamClient.handleChunk(r, "{\"choices\":[{\"index\":0,\"text\":\"a\"}]}", 1010 * MS);
        r.endNs = 1011 * MS;
        assertTrue(Double.isNaN(r.tpotMs()));
        assertEquals(0, r.itlsMs().length);
    }

    @Test
    void requestBodies() throws Exception {
        Options.Builder b = Options.builder();
        b.ignoreEos = true;
        OpenAiStreamClient completions = new OpenAiStreamClient(b.build(), "m");
        var body = OpenAiStreamClient.JSON.readTree(completions.body(new BenchRequest(0, new int[] {5, 6}, null, 2, 9)));
        assertEquals("m", body.get("model").asText());
        assertEquals("[5,6]", body.get("prompt").toString());
        assertEquals(9, body.get("max_tokens").asInt());
        assertTrue(body.get("ignore_eos").asBoolean());
        assertTrue(body.get("stream").asBoolean());
        assertTrue(body.at("/stream_options/include_usage").asBoolean());
        assertEquals(0.0, body.get("temperature").asDouble());
        completions.close();

        b.endpoint = "/v1/chat/completions";
        b.ignoreEos = false;
        b.temperature = Optional.empty();
        OpenAiStreamClient chat = new OpenAiStreamClient(b.build(), "m");
        body = OpenAiStreamClient.JSON.readTree(chat.body(new BenchRequest(0, null, "hello there", 2, 3)));
        assertEquals("user", body.at("/messages/0/role").asText());
        assertEquals("hello there", body.at("/messages/0/content").asText());
        assertEquals(3, body.get("max_completion_tokens").asInt());
        assertFalse(body.has("ignore_eos"));
        assertFalse(body.has("temperature"));
        chat.close();
    }

    @Test
    void peakConcurrencyCountsOverlaps() {
        RequestResult a = result(1);
        RequestResult b = result(1);
        RequestResult c = result(1);
        a.startNs = 0; a.endNs = 10;
        b.startNs = 5; b.endNs = 20;
        c.startNs = 10; c.endNs = 30; // starts as a ends
        assertEquals(2, BenchmarkResult.peakConcurrency(List.of(a, b, c)));
    }
}
