package io.kvass.bench.loadgen;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Summary statistics of one metric, computed as numpy computes them in vLLM's benchmark: population
 * standard deviation ({@code ddof=0}) and percentiles by linear interpolation between closest ranks
 * ({@code np.percentile}'s default). An empty sample summarizes to zeros, as {@code np.mean(x or 0)} does.
 *
 * @param percentiles percentile (e.g. 99.0) to value, in the order asked for
 */
public record Stats(int count, double mean, double std, double min, double max, double median,
                    Map<Double, Double> percentiles) {

    public static Stats of(double[] values, double... percentiles) {
        Map<Double, Double> p = new LinkedHashMap<>();
        if (values.length == 0) {
            for (double q : percentiles) {
                p.put(q, 0.0);
            }
            return new Stats(0, 0, 0, 0, 0, 0, p);
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        double sum = 0;
        for (double v : sorted) {
            sum += v;
        }
        double mean = sum / sorted.length;
        double squares = 0;
        for (double v : sorted) {
            squares += (v - mean) * (v - mean);
        }
        for (double q : percentiles) {
            p.put(q, percentileOfSorted(sorted, q));
        }
        return new Stats(sorted.length, mean, Math.sqrt(squares / sorted.length), sorted[0],
                sorted[sorted.length - 1], percentileOfSorted(sorted, 50), p);
    }

    /** The {@code q}-th percentile (0..100) of {@code values} (any order), linear interpolation. */
    public static double percentile(double[] values, double q) {
        if (values.length == 0) {
            return 0;
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return percentileOfSorted(sorted, q);
    }

    static double percentileOfSorted(double[] sorted, double q) {
        if (q < 0 || q > 100 || Double.isNaN(q)) {
            throw new IllegalArgumentException("percentile must be in [0, 100], got " + q);
        }
        double rank = q / 100.0 * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = Math.min(lo + 1, sorted.length - 1);
        double frac = rank - lo;
        return sorted[lo] + frac * (sorted[hi] - sorted[lo]);
    }

    public double percentile(double q) {
        Double v = percentiles.get(q);
        if (v == null) {
            throw new IllegalArgumentException("percentile " + q + " was not computed; have " + percentiles.keySet());
        }
        return v;
    }
}
