package io.kvass.scheduler.core;

import io.kvass.worker.sampling.SampledToken;
import java.util.Optional;

/** A sequence's new token after a step, and its finish if that token ended it. */
public record SequenceUpdate(String requestId, int index, String seqId, SampledToken token, Optional<Finish> finish) {
}
