package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Statistics of the arrival process (tolerances are many standard errors wide: the seeds are fixed). */
class ArrivalsTest {
    private static final int N = 50_001;

    private static double mean(double[] x) {
        double s = 0;
        for (double v : x) {
            s += v;
        }
        return s / x.length;
    }

    private static double cv(double[] x) {
        double m = mean(x);
        double s = 0;
        for (double v : x) {
            s += (v - m) * (v - m);
        }
        return Math.sqrt(s / x.length) / m;
    }

    @Test
    void infiniteRateSendsAllAtOnce() {
        assertArrayEquals(new double[5], Arrivals.offsets(5, Double.POSITIVE_INFINITY, 1.0, 0));
    }

    @Test
    void poissonGapsAreExponential() {
        double rate = 10;
        double[] offsets = Arrivals.offsets(N, rate, 1.0, 42);
        assertEquals(0.0, offsets[0]);
        double[] gaps = Arrivals.gaps(offsets);
        for (double g : gaps) {
            assertTrue(g >= 0);
        }
        assertEquals(1 / rate, mean(gaps), 0.02 / rate, "mean gap 1/rate");
        assertEquals(1.0, cv(gaps), 0.03, "exponential: std = mean");
        long below = java.util.Arrays.stream(gaps).filter(g -> g < 1 / rate).count();
        assertEquals(1 - Math.exp(-1), below / (double) gaps.length, 0.01, "P(gap < mean) = 1 - 1/e");
        long belowMedian = java.util.Arrays.stream(gaps).filter(g -> g < Math.log(2) / rate).count();
        assertEquals(0.5, belowMedian / (double) gaps.length, 0.01, "median ln2/rate");
    }

    @Test
    void poissonCountsPerWindowHaveVarianceEqualToMean() {
        double rate = 8;
        double[] offsets = Arrivals.offsets(N, rate, 1.0, 7);
        int windows = (int) Math.floor(offsets[N - 1]);
        int[] counts = new int[windows];
        for (double t : offsets) {
            if (t < windows) {
                counts[(int) t]++;
            }
        }
        double m = 0;
        for (int c : counts) {
            m += c;
        }
        m /= windows;
        double var = 0;
        for (int c : counts) {
            var += (c - m) * (c - m);
        }
        var /= windows;
        assertEquals(rate, m, 0.3, "arrivals per second");
        assertEquals(1.0, var / m, 0.1, "index of dispersion of a Poisson process is 1");
    }

    @Test
    void burstinessKeepsTheMeanAndSetsTheSpread() {
        for (double burstiness : new double[] {0.25, 0.5, 2.0, 4.0}) {
            double[] gaps = Arrivals.gaps(Arrivals.offsets(N, 5, burstiness, 3));
            assertEquals(0.2, mean(gaps), 0.2 * 0.04, "mean gap at burstiness " + burstiness);
            assertEquals(1 / Math.sqrt(burstiness), cv(gaps), 0.05 / Math.sqrt(burstiness),
                    "gamma CV = 1/sqrt(shape) at burstiness " + burstiness);
        }
    }

    @Test
    void gammaSamplerMoments() {
        SplittableRandom random = new SplittableRandom(11);
        for (double shape : new double[] {0.3, 1.0, 2.5, 9.0}) {
            double[] x = new double[N];
            for (int i = 0; i < N; i++) {
                x[i] = Arrivals.gamma(random, shape);
            }
            assertEquals(shape, mean(x), 0.03 * shape, "gamma(" + shape + ") mean");
            double var = Math.pow(cv(x) * mean(x), 2);
            assertEquals(shape, var, 0.08 * shape, "gamma(" + shape + ") variance");
        }
    }

    @Test
    void deterministicPerSeed() {
        assertArrayEquals(Arrivals.offsets(100, 3, 1, 9), Arrivals.offsets(100, 3, 1, 9));
        assertTrue(Arrivals.offsets(100, 3, 1, 9)[99] != Arrivals.offsets(100, 3, 1, 10)[99]);
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> Arrivals.offsets(3, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> Arrivals.offsets(3, 1, 0, 0));
    }
}
