package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** Expected values are numpy's: np.percentile (linear), np.std (ddof=0). */
class StatsTest {
    private static final double EPS = 1e-9;

    @Test
    void percentilesInterpolateLinearlyLikeNumpy() {
        double[] x = {4, 1, 3, 2}; // unsorted on purpose
        assertEquals(2.5, Stats.percentile(x, 50), EPS);
        assertEquals(3.7, Stats.percentile(x, 90), EPS);   // np.percentile([1,2,3,4], 90)
        assertEquals(3.97, Stats.percentile(x, 99), EPS);
        assertEquals(1.0, Stats.percentile(x, 0), EPS);
        assertEquals(4.0, Stats.percentile(x, 100), EPS);
        assertEquals(1.75, Stats.percentile(x, 25), EPS);
        assertEquals(4, x[0], "the input is not sorted in place");
    }

    @Test
    void percentilesOfOneToHundred() {
        double[] x = new double[100];
        for (int i = 0; i < 100; i++) {
            x[i] = i + 1;
        }
        assertEquals(50.5, Stats.percentile(x, 50), EPS);
        assertEquals(90.1, Stats.percentile(x, 90), EPS);
        assertEquals(99.01, Stats.percentile(x, 99), EPS);
    }

    @Test
    void summary() {
        Stats s = Stats.of(new double[] {2, 4, 4, 4, 5, 5, 7, 9}, 50, 90, 99);
        assertEquals(8, s.count());
        assertEquals(5.0, s.mean(), EPS);
        assertEquals(2.0, s.std(), EPS); // population std
        assertEquals(4.5, s.median(), EPS);
        assertEquals(2, s.min(), EPS);
        assertEquals(9, s.max(), EPS);
        assertEquals(4.5, s.percentile(50), EPS);
        assertEquals(7.6, s.percentile(90), EPS);   // np.percentile(..., 90)
        assertEquals(8.86, s.percentile(99), EPS);
    }

    @Test
    void singleAndEmptySamples() {
        Stats one = Stats.of(new double[] {7}, 99);
        assertEquals(7, one.mean(), EPS);
        assertEquals(0, one.std(), EPS);
        assertEquals(7, one.percentile(99), EPS);
        Stats none = Stats.of(new double[0], 50, 99);
        assertEquals(0, none.count());
        assertEquals(0, none.mean(), EPS);
        assertEquals(0, none.percentile(99), EPS);
        assertEquals(0, Stats.percentile(new double[0], 50), EPS);
    }

    @Test
    void rejectsBadPercentiles() {
        assertThrows(IllegalArgumentException.class, () -> Stats.percentile(new double[] {1}, 101));
        assertThrows(IllegalArgumentException.class, () -> Stats.of(new double[] {1}, 50).percentile(99));
    }
}
