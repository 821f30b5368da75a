package io.kvass.bench.loadgen;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * An incremental parser of a {@code text/event-stream} body (the WHATWG rules that matter here):
 * lines end with LF, CRLF or CR (a CRLF may be split across buffers); {@code data:} lines of one event
 * are joined with LF; a blank line dispatches the event; lines starting with {@code :} are comments;
 * one space after the colon is dropped; {@code event:} names the event. Bytes are decoded as UTF-8
 * per whole line, so a multi-byte character split across buffers survives. Unlike the spec, an event
 * left without its closing blank line when the stream ends is still dispatched by {@link #finish()}.
 * Not thread-safe: one parser per response, fed in order.
 */
public final class SseParser {
    /** Receives each dispatched event. {@code event} is "message" unless the stream named it. */
    @FunctionalInterface
    public interface Listener {
        void onEvent(String event, String data);
    }

    private final Listener listener;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
    private final StringBuilder data = new StringBuilder();
    private boolean hasData;
    private String event = "message";
    private boolean lastWasCr;

    public SseParser(Listener listener) {
        this.listener = listener;
    }

    public void feed(ByteBuffer buffer) {
        while (buffer.hasRemaining()) {
            byte b = buffer.get();
            if (b == '\n') {
                if (lastWasCr) {
                    lastWasCr = false; // the LF of a CRLF: the line already ended at the CR
                    continue;
                }
                endLine();
            } else if (b == '\r') {
                lastWasCr = true;
                endLine();
            } else {
                lastWasCr = false;
                line.write(b);
            }
        }
    }

    public void feed(byte[] bytes) {
        feed(ByteBuffer.wrap(bytes));
    }

    public void feed(String text) {
        feed(text.getBytes(StandardCharsets.UTF_8));
    }

    /** The stream ended: a pending line is processed and a pending event dispatched. */
    public void finish() {
        if (line.size() > 0) {
            endLine();
        }
        dispatch();
    }

    private void endLine() {
        String text = line.toString(StandardCharsets.UTF_8);
        line.reset();
        if (text.isEmpty()) {
            dispatch();
            return;
        }
        if (text.charAt(0) == ':') {
            return; // comment (keep-alive)
        }
        int colon = text.indexOf(':');
        String field = colon < 0 ? text : text.substring(0, colon);
        String value = colon < 0 ? "" : text.substring(colon + 1);
        if (value.startsWith(" ")) {
            value = value.substring(1);
        }
        switch (field) {
            case "data" -> {
                if (hasData) {
                    data.append('\n');
                }
                data.append(value);
                hasData = true;
            }
            case "event" -> event = value;
            default -> { } // id, retry and unknown fields do not matter here
        }
    }

    private void dispatch() {
        if (hasData) {
            String payload = data.toString();
            String name = event;
            data.setLength(0);
            hasData = false;
            event = "message";
            listener.onEvent(name, payload);
        } else {
            event = "message";
        }
    }
}
