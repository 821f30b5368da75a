package io.kvass.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ConnectionWatchTest {
    @Test
    void answeredRequestsLeaveNothingBehindOnTheirConnection() {
        ConnectionWatch.Closing closing = new ConnectionWatch.Closing();
        AtomicInteger ran = new AtomicInteger();
        for (int i = 0; i < 10_000; i++) {
            closing.onClose(ran::incrementAndGet).run(); // registered, then answered
        }
        assertEquals(0, closing.pending());
        List<Runnable> open = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            open.add(closing.onClose(ran::incrementAndGet));
        }
        assertEquals(3, closing.pending());
        closing.close();
        assertEquals(3, ran.get(), "only the unanswered ones run, once");
        open.forEach(Runnable::run);
        closing.onClose(ran::incrementAndGet);
        assertEquals(4, ran.get(), "after the close an action runs at once");
        assertEquals(0, closing.pending());
    }
}
