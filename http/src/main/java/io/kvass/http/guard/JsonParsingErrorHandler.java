package io.kvass.http.guard;

import org.apache.pekko.event.LoggingAdapter;
import org.apache.pekko.http.ParsingErrorHandler;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.scaladsl.model.ErrorInfo;
import org.apache.pekko.http.scaladsl.model.StatusCode;
import org.apache.pekko.http.scaladsl.settings.ServerSettings;

/**
 * Pekko HTTP's answer to a request it could not parse (bad framing, 414, 431, 501, 505), in OpenAI's
 * error shape instead of plain text. Named by {@code pekko.http.server.parsing.error-handler}; Pekko
 * creates it through its public no-argument constructor.
 */
public final class JsonParsingErrorHandler extends ParsingErrorHandler {
    @Override
    public HttpResponse handle(StatusCode status, ErrorInfo info, LoggingAdapter log, ServerSettings settings) {
        log.debug("refused an unparsable request: {} {}", status.intValue(), info.formatPretty());
        // NOTE: the summary only (e.g. "URI length exceeds the configured limit of 2048 characters"); the detail
        // may quote the client's bytes back.
        return HttpErrors.closing(HttpErrors.parsing(status.intValue(), info.summary()));
    }
}
