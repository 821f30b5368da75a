package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * A non-streamed request whose client leaves is not only aborted: its route completes, so the
 * connection's stream (and the request and answer it holds) goes away. Before, the route waited for a
 * body the aborted request never wrote, and every such connection stayed on the heap (the soak).
 */
class DroppedRequestTest {
    private static final String COMPLETIONS_4XX =
            "http_requests_total{handler=\"/v1/completions\",method=\"POST\",status=\"4xx\"}";

    @Test
    void aDroppedWholeRequestsRouteCompletes() throws Exception {
        try (TestServer server = TestServer.start(HttpSettings.local(), 8, Duration.ofMillis(20))) {
            Client client = server.client();
            for (int i = 0; i < 5; i++) {
                try (Socket socket = new Socket("127.0.0.1", server.base.getPort())) {
                    byte[] body = "{\"prompt\": \"Once\", \"max_tokens\": 300, \"ignore_eos\": true}"
                            .getBytes(StandardCharsets.UTF_8);
                    OutputStream out = socket.getOutputStream();
                    out.write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    out.write(body);
                    out.flush();
                    Thread.sleep(150);
                }
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (client.metric(COMPLETIONS_4XX) != 5) {
                assertTrue(System.nanoTime() < deadline, "every dropped request's route completed: "
                        + client.metric(COMPLETIONS_4XX));
                Thread.sleep(50);
            }
        }
    }
}
