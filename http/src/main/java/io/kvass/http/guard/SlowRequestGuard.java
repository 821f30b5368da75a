package io.kvass.http.guard;

import java.time.Duration;
import org.apache.pekko.stream.Attributes;
import org.apache.pekko.stream.BidiShape;
import org.apache.pekko.stream.Inlet;
import org.apache.pekko.stream.Outlet;
import org.apache.pekko.stream.stage.AbstractInHandler;
import org.apache.pekko.stream.stage.AbstractOutHandler;
import org.apache.pekko.stream.stage.GraphStage;
import org.apache.pekko.stream.stage.GraphStageLogic;
import org.apache.pekko.stream.stage.TimerGraphStageLogic;
import org.apache.pekko.util.ByteString;

/**
 * Bounds the time a client takes to send a request's headers, on the connection's bytes.
 *
 * <p>Pekko HTTP's only bound is the idle timeout (5 minutes), which a client resets with one byte every
 * few seconds, so a few hundred such sockets would hold the server's connections. Here the first byte
 * that arrives while the connection has no request open starts a clock; when the server has not parsed
 * a request's headers by {@code timeout} (the {@link RequestClock} tells), the client gets a 408 and the
 * connection closes. Bodies have their own bound where they are read (the route's body timeout).
 *
 * <p>Shape: {@code in1} bytes from the client, {@code out1} to the HTTP parser; {@code in2} bytes the
 * server writes, {@code out2} to the client.
 */
final class SlowRequestGuard extends GraphStage<BidiShape<ByteString, ByteString, ByteString, ByteString>> {
    private static final String TIMER = "headers";

    private final Inlet<ByteString> fromClient = Inlet.create("SlowRequestGuard.fromClient");
    private final Outlet<ByteString> toParser = Outlet.create("SlowRequestGuard.toParser");
    private final Inlet<ByteString> fromServer = Inlet.create("SlowRequestGuard.fromServer");
    private final Outlet<ByteString> toClient = Outlet.create("SlowRequestGuard.toClient");
    private final BidiShape<ByteString, ByteString, ByteString, ByteString> shape =
            BidiShape.of(fromClient, toParser, fromServer, toClient);

    private final RequestClock clock;
    private final Duration timeout;
    private final ByteString timeoutResponse;

    SlowRequestGuard(RequestClock clock, Duration timeout, ByteString timeoutResponse) {
        this.clock = clock;
        this.timeout = timeout;
        this.timeoutResponse = timeoutResponse;
    }

    @Override
    public BidiShape<ByteString, ByteString, ByteString, ByteString> shape() {
        return shape;
    }

    @Override
    public GraphStageLogic createLogic(Attributes attributes) {
        return new TimerGraphStageLogic(shape) {
            /** The count of requests when the clock started: a request parsed since then stops it. */
            private long startedAfter = -1;
            private boolean timedOut;

            {
                setHandler(fromClient, new AbstractInHandler() {
                    @Override
                    public void onPush() {
                        ByteString bytes = grab(fromClient);
                        if (startedAfter < 0 && !bytes.isEmpty() && clock.openCount() == 0) {
                            startedAfter = clock.arrivedCount();
                            scheduleOnce(TIMER, timeout);
                        }
                        push(toParser, bytes);
                    }
                });
                setHandler(toParser, new AbstractOutHandler() {
                    @Override
                    public void onPull() {
                        pull(fromClient);
                    }
                });
                setHandler(fromServer, new AbstractInHandler() {
                    @Override
                    public void onPush() {
                        push(toClient, grab(fromServer));
                    }

                    @Override
                    public void onUpstreamFinish() {
                        if (!timedOut) {
                            complete(toClient);
                        }
                    }
                });
                setHandler(toClient, new AbstractOutHandler() {
                    @Override
                    public void onPull() {
                        if (timedOut) {
                            push(toClient, timeoutResponse);
                            completeStage();
                        } else if (!isClosed(fromServer) && !hasBeenPulled(fromServer)) {
                            pull(fromServer);
                        }
                    }
                });
            }

            @Override
            public void onTimer(Object key) {
                if (clock.arrivedCount() != startedAfter || clock.openCount() > 0) {
                    startedAfter = -1; // the headers came in time; the next request's first byte starts anew
                    return;
                }
                // NOTE: nothing is open, so no response is being written: the 408 cannot interleave with one.
                timedOut = true;
                cancel(fromClient);
                complete(toParser);
                cancel(fromServer);
                if (isAvailable(toClient)) {
                    push(toClient, timeoutResponse);
                    completeStage();
                }
            }
        };
    }
}
