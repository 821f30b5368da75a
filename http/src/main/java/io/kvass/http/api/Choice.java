package io.kvass.http.api;

import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.sampling.SampledToken;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * One choice of a response as it grows: the text and tokens so far (kept only for non-streamed
 * responses), the offset of the next token's text (completions' {@code text_offset}) and its finish.
 */
public final class Choice {
    private final int index;
    private final boolean keep;
    private final StringBuilder text = new StringBuilder();
    private final List<SampledToken> tokens = new ArrayList<>();
    private int textOffset;
    private Optional<Finish> finish = Optional.empty();

    /** @param keep whether to accumulate text and tokens (non-streamed responses) */
    public Choice(int index, String prefix, boolean keep) {
        this.index = index;
        this.keep = keep;
        this.textOffset = prefix.length();
        if (keep) {
            text.append(prefix);
        }
    }

    public void add(RequestOutput o) {
        if (keep) {
            text.append(o.text());
            tokens.addAll(o.tokens());
        }
        if (o.finish().isPresent()) {
            finish = o.finish();
        }
    }

    public int index() {
        return index;
    }

    public String text() {
        return text.toString();
    }

    public List<SampledToken> tokens() {
        return tokens;
    }

    public Optional<Finish> finish() {
        return finish;
    }

    /** Returns the offset of a token whose text is {@code tokenText} and advances past it. */
    int advance(String tokenText) {
        int at = textOffset;
        textOffset += tokenText.length();
        return at;
    }
}
