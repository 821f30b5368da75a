package io.kvass.cluster.placement;

import java.util.Locale;

/** What a replica runs on: a GPU of the node, or a share of its CPU budget. */
public enum DeviceKind {
    CPU, CUDA;

    public static DeviceKind parse(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "cpu" -> CPU;
            case "cuda", "gpu" -> CUDA;
            default -> throw new IllegalArgumentException("device must be cpu or cuda, got '" + s + "'");
        };
    }

    public String apiName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
