package io.kvass.cluster.cli;

import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.cpu.CpuWeightFormat;
import io.kvass.worker.cpu.CpuWeightMemory;
import java.nio.file.Path;

/** Flags shared by {@code generate} and {@code serve} that shape the model replica. */
final class Options {
    private Options() {
    }

    static ReplicaOptions replica(CliArgs a, int maxNumSeqs) {
        try {
            ReplicaOptions.Device device = ReplicaOptions.Device.parse(a.get("device").orElse("cpu"));
            if (a.has("gpu-memory-utilization")) {
                if (a.has("kv-cache-memory")) {
                    throw new CliException("give --kv-cache-memory or --gpu-memory-utilization, not both");
                }
                if (device == ReplicaOptions.Device.CPU) {
                    throw new CliException("--gpu-memory-utilization applies to --device cuda only; the CPU backend "
                            + "sizes its KV cache with --kv-cache-memory");
                }
            }
            return new ReplicaOptions(Path.of(a.require("model")), device,
                    a.intValue("block-size", 16),
                    a.longValue("kv-cache-memory", 512L << 20),
                    a.intValue("max-model-len", 0),
                    maxNumSeqs,
                    a.intValue("threads", Runtime.getRuntime().availableProcessors()),
                    a.has("gpu-memory-utilization") ? a.floatValue("gpu-memory-utilization", 0.9f)
                            : ReplicaOptions.DEFAULT_GPU_MEMORY_UTILIZATION,
                    a.get("cpu-weights").map(CpuWeightMemory::parse).orElse(CpuWeightMemory.DEFAULT),
                    a.get("cpu-weight-format").map(CpuWeightFormat::parse).orElse(CpuWeightFormat.DEFAULT));
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage());
        }
    }
}
