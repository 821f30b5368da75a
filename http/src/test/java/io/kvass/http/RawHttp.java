package io.kvass.http;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;

/** Bytes on a socket, for requests no HTTP client would send: partial, slow, malformed. */
final class RawHttp implements AutoCloseable {
    final Socket socket;
    private final OutputStream out;
    private final InputStream in;

    RawHttp(URI base) {
        try {
            socket = new Socket();
            socket.connect(new InetSocketAddress(base.getHost(), base.getPort()), 5_000);
            socket.setSoTimeout(30_000);
            out = socket.getOutputStream();
            in = socket.getInputStream();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    RawHttp send(String text) {
        try {
            out.write(text.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            return this;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Whether the write went through (false once the server closed the connection). */
    boolean trySend(String text) {
        try {
            send(text);
            return true;
        } catch (UncheckedIOException e) {
            return false;
        }
    }

    /** Everything until the server closes the connection (or {@code timeoutMs} passes: then what came so far). */
    String readToEnd(int timeoutMs) {
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        try {
            socket.setSoTimeout(timeoutMs);
            byte[] buffer = new byte[8192];
            for (int n; (n = in.read(buffer)) >= 0; ) {
                got.write(buffer, 0, n);
            }
        } catch (SocketTimeoutException e) {
            // what came so far
        } catch (IOException e) {
            // a reset after the response: what came so far
        }
        return got.toString(StandardCharsets.UTF_8);
    }

    /** The first response on the connection: status line, headers, body (by Content-Length). */
    Response readResponse(int timeoutMs) {
        try {
            socket.setSoTimeout(timeoutMs);
            ByteArrayOutputStream head = new ByteArrayOutputStream();
            int matched = 0;
            while (matched < 4) {
                int b = in.read();
                if (b < 0) {
                    throw new IOException("closed after " + head.size() + " bytes: " + head);
                }
                head.write(b);
                matched = (b == "\r\n\r\n".charAt(matched)) ? matched + 1 : (b == '\r' ? 1 : 0);
            }
            String headers = head.toString(StandardCharsets.ISO_8859_1);
            int length = 0;
            for (String line : headers.split("\r\n")) {
                if (line.toLowerCase().startsWith("content-length:")) {
                    length = Integer.parseInt(line.substring("content-length:".length()).trim());
                }
            }
            byte[] body = in.readNBytes(length);
            return new Response(Integer.parseInt(headers.split(" ")[1]), headers, new String(body, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    record Response(int status, String headers, String body) {
        boolean hasHeader(String name, String value) {
            for (String line : headers.split("\r\n")) {
                int colon = line.indexOf(':');
                if (colon > 0 && line.substring(0, colon).trim().equalsIgnoreCase(name)
                        && line.substring(colon + 1).trim().equalsIgnoreCase(value)) {
                    return true;
                }
            }
            return false;
        }

        boolean hasHeader(String name) {
            return headers.toLowerCase().contains("\r\n" + name.toLowerCase() + ":");
        }
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException e) {
            // closing anyway
        }
    }
}
