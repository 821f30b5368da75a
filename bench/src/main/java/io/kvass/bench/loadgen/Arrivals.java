package io.kvass.bench.loadgen;

import java.util.SplittableRandom;

/**
 * When each request is sent, as vLLM's benchmark sends them: at an infinite rate all at once; otherwise
 * the first at 0 and the gaps between requests drawn from a gamma distribution with shape
 * {@code burstiness} and scale {@code 1 / (rate * burstiness)}, so the mean gap is always {@code 1 / rate}.
 * Burstiness 1 is a Poisson process (exponential gaps); below 1 arrivals are burstier (coefficient of
 * variation {@code 1 / sqrt(burstiness)}), above 1 more regular.
 */
public final class Arrivals {
    private Arrivals() {
    }

    /** Send times in seconds from the start, one per request, non-decreasing, the first 0. */
    public static double[] offsets(int n, double ratePerSecond, double burstiness, long seed) {
        if (burstiness <= 0 || Double.isNaN(burstiness)) {
            throw new IllegalArgumentException("burstiness must be > 0, got " + burstiness);
        }
        if (!(ratePerSecond > 0)) {
            throw new IllegalArgumentException("request rate must be > 0 (or infinite), got " + ratePerSecond);
        }
        double[] out = new double[n];
        if (Double.isInfinite(ratePerSecond)) {
            return out;
        }
        SplittableRandom random = new SplittableRandom(seed);
        double scale = 1.0 / (ratePerSecond * burstiness);
        double t = 0;
        for (int i = 1; i < n; i++) {
            t += gamma(random, burstiness) * scale;
            out[i] = t;
        }
        return out;
    }

    /** The gaps between consecutive offsets (n - 1 of them). */
    public static double[] gaps(double[] offsets) {
        double[] gaps = new double[Math.max(0, offsets.length - 1)];
        for (int i = 1; i < offsets.length; i++) {
            gaps[i - 1] = offsets[i] - offsets[i - 1];
        }
        return gaps;
    }

    /** Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 by boosting: G(a) = G(a + 1) * U^(1/a). */
    static double gamma(SplittableRandom random, double shape) {
        if (shape < 1) {
            double u;
            do {
                u = random.nextDouble();
            } while (u == 0);
            return gamma(random, shape + 1) * Math.pow(u, 1.0 / shape);
        }
        if (shape == 1) {
            return random.nextExponential();
        }
        double d = shape - 1.0 / 3.0;
        double c = 1.0 / Math.sqrt(9 * d);
        while (true) {
            double x;
            double v;
            do {
                x = random.nextGaussian();
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            double u = random.nextDouble();
            if (u < 1 - 0.0331 * x * x * x * x) {
                return d * v;
            }
            if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) {
                return d * v;
            }
        }
    }
}
