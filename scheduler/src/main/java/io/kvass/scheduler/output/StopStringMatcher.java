package io.kvass.scheduler.output;

import java.util.List;
import java.util.Optional;

/**
 * Finds stop strings in streamed text, across token boundaries: text that might still turn out to
 * be the start of a stop string is held back until it is known not to be. The stop string itself
 * and anything after it are never emitted.
 */
final class StopStringMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();

    /** Emitted text, and the stop string that ended the sequence, if one did. */
    record Match(String text, Optional<String> stop) {
    }

    StopStringMatcher(List<String> stops) {
        this.stops = List.copyOf(stops);
    }

    Match offer(String newText) {
        if (stops.isEmpty()) {
            return new Match(newText, Optional.empty());
        }
        pending.append(newText);
        int best = -1;
        String hit = null;
        for (String stop : stops) {
            int at = pending.indexOf(stop);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
                hit = stop;
            }
        }
        if (hit != null) {
            String text = pending.substring(0, best);
            pending.setLength(0);
            return new Match(text, Optional.of(hit));
        }
        int keep = longestSuffixThatStartsAStop();
        String text = pending.substring(0, pending.length() - keep);
        pending.delete(0, pending.length() - keep);
        return new Match(text, Optional.empty());
    }

    /** What was held back, once the sequence ends for another reason. */
    String flush() {
        String rest = pending.toString();
        pending.setLength(0);
        return rest;
    }

    private int longestSuffixThatStartsAStop() {
        int best = 0;
        for (String stop : stops) {
            for (int len = Math.min(stop.length() - 1, pending.length()); len > best; len--) {
                if (pending.substring(pending.length() - len).equals(stop.substring(0, len))) {
                    best = len;
                    break;
                }
            }
        }
        return best;
    }
}
