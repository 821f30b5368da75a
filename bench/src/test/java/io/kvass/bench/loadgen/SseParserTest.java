package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SseParserTest {
    private final List<String> events = new ArrayList<>();
    private final SseParser parser = new SseParser((event, data) -> events.add(event + "|" + data));

    @Test
    void dataLinesAndDone() {
        parser.feed("data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n");
        assertEquals(List.of("message|{\"a\":1}", "message|{\"b\":2}", "message|[DONE]"), events);
    }

    @Test
    void multipleDataLinesJoinWithNewline() {
        parser.feed("data: one\ndata: two\ndata:three\n\n");
        assertEquals(List.of("message|one\ntwo\nthree"), events);
    }

    @Test
    void commentsEventNamesAndOtherFields() {
        parser.feed(": keep-alive\n\nevent: error\nid: 7\nretry: 100\ndata: {\"x\":0}\n\ndata: y\n\n");
        assertEquals(List.of("error|{\"x\":0}", "message|y"), events, "a comment alone dispatches nothing");
    }

    @Test
    void lineEndingsCrLfAndCr() {
        parser.feed("data: a\r\n\r\ndata: b\r\rdata: c\n\n");
        assertEquals(List.of("message|a", "message|b", "message|c"), events);
    }

    @Test
    void crLfSplitAcrossBuffers() {
        parser.feed("data: a\r");
        parser.feed("\n\r");
        assertEquals(List.of("message|a"), events);
        parser.feed("\ndata: b\r\n\r\n");
        assertEquals(List.of("message|a", "message|b"), events, "the LF after a CR is not another blank line");
    }

    @Test
    void anyChunkingGivesTheSameEvents() {
        String stream = "data: {\"text\":\"caf\u00e9 \u2603\"}\n\n: c\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        byte[] bytes = stream.getBytes(StandardCharsets.UTF_8);
        SseParser whole = new SseParser((e, d) -> events.add(d));
        whole.feed(bytes);
        List<String> expected = List.copyOf(events);
        assertEquals(3, expected.size());
        assertEquals("{\"text\":\"caf\u00e9 \u2603\"}", expected.get(0), "UTF-8 decoded per line");
        for (int size = 1; size <= 7; size++) {
            events.clear();
            SseParser split = new SseParser((e, d) -> events.add(d));
            for (int i = 0; i < bytes.length; i += size) {
                split.feed(java.nio.ByteBuffer.wrap(bytes, i, Math.min(size, bytes.length - i)));
            }
            assertEquals(expected, events, "buffers of " + size + " bytes (multi-byte characters split)");
        }
    }

    @Test
    void noSpaceAfterColonAndEmptyData() {
        parser.feed("data:x\n\ndata\n\ndata:\n\n");
        assertEquals(List.of("message|x", "message|", "message|"), events);
    }

    @Test
    void finishDispatchesAnUnterminatedEvent() {
        parser.feed("data: [DONE]");
        assertTrue(events.isEmpty());
        parser.finish();
        assertEquals(List.of("message|[DONE]"), events);
        parser.finish();
        assertEquals(1, events.size());
    }

    @Test
    void blankLinesWithoutDataDispatchNothing() {
        parser.feed("\n\n\r\n");
        parser.finish();
        assertFalse(events.iterator().hasNext());
    }
}
