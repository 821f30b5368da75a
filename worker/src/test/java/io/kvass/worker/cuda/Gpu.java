package io.kvass.worker.cuda;

import org.junit.jupiter.api.Assumptions;

/** GPU tests skip, saying why, where no usable CUDA GPU (or no kernel build) is present. */
final class Gpu {
    private Gpu() {
    }

    static void assumePresent() {
        var reason = CudaBackend.unavailableReason();
        Assumptions.assumeTrue(reason.isEmpty(), () -> "skipped, no CUDA GPU: " + reason.orElse(""));
    }

    /** {@code ||a - b|| / ||b||} over all elements. */
    static double relativeError(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (a[i] - (double) b[i]) * (a[i] - (double) b[i]);
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-30));
    }

    /** Largest minus second-largest value. */
    static double top2Gap(float[] row) {
        double best = Double.NEGATIVE_INFINITY, second = Double.NEGATIVE_INFINITY;
        for (float v : row) {
            if (v > best) {
                second = best;
                best = v;
            } else if (v > second) {
                second = v;
            }
        }
        return best - second;
    }
}
