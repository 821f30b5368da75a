package io.kvass.cluster.cli;

import io.kvass.worker.ReplicaOptions;
import java.nio.file.Path;

/** Flags shared by {@code generate} and {@code serve} that shape the model replica. */
final class Options {
    private Options() {
    }

    static ReplicaOptions replica(CliArgs a, int maxNumSeqs) {
        try {
            return new ReplicaOptions(Path.of(a.require("model")),
                    ReplicaOptions.Device.parse(a.get("device").orElse("cpu")),
                    a.intValue("block-size", 16),
                    a.longValue("kv-cache-memory", 512L << 20),
                    a.intValue("max-model-len", 0),
                    maxNumSeqs,
                    a.intValue("threads", Runtime.getRuntime().availableProcessors()));
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage());
        }
    }
}
