package io.kvass.http.guard;

import java.util.concurrent.TimeoutException;
import org.apache.pekko.http.scaladsl.model.EntityStreamSizeException;

/** Why reading a request body failed, whichever way Pekko wraps it. */
public final class BodyFailure {
    private BodyFailure() {
    }

    /** Over max-body-size, by its Content-Length or by the bytes of a chunked body. */
    public static boolean tooLarge(Throwable failure) {
        return find(failure, EntityStreamSizeException.class) || message(failure, "exceeds the configured limit")
                || message(failure, "exceeded content length limit") || message(failure, "Request too large");
    }

    public static boolean timedOut(Throwable failure) {
        return find(failure, TimeoutException.class) || find(failure, java.util.concurrent.TimeoutException.class);
    }

    private static boolean find(Throwable failure, Class<? extends Throwable> type) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    private static boolean message(Throwable failure, String text) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t.getMessage() != null && t.getMessage().contains(text)) {
                return true;
            }
        }
        return false;
    }
}
