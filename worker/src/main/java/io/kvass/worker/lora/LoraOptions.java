package io.kvass.worker.lora;

import java.nio.file.Path;
import java.util.List;

/**
 * A replica's LoRA settings.
 *
 * @param device       slots the backend holds, and the largest rank it accepts
 * @param maxCpuLoras  adapters kept decoded in host memory (vLLM's {@code --max-cpu-loras}); the rest
 *                     are read from disk again when needed. At least {@code device.maxLoras()}.
 * @param allowedRoots directories adapters may be loaded from: an adapter's real path (links resolved)
 *                     must lie under one of them
 */
public record LoraOptions(LoraCapacity device, int maxCpuLoras, List<Path> allowedRoots) {

    public LoraOptions {
        allowedRoots = List.copyOf(allowedRoots);
        if (maxCpuLoras < device.maxLoras()) {
            throw new IllegalArgumentException("max_cpu_loras (" + maxCpuLoras + ") must be at least max_loras ("
                    + device.maxLoras() + ")");
        }
    }

    /** vLLM's defaults: max_cpu_loras = max_loras. */
    public static LoraOptions of(int maxLoras, int maxRank, List<Path> allowedRoots) {
        return new LoraOptions(new LoraCapacity(maxLoras, maxRank), maxLoras, allowedRoots);
    }
}
