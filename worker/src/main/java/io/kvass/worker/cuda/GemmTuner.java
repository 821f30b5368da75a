package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuStreamIsCapturing;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import jcuda.driver.CUevent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Linear product ({@link CuBlas#linear}) on whichever of cublasGemmEx and cuBLASLt's heuristic
 * algorithms runs its shape fastest here, as PyTorch's TunableOp: the first time a decode shape is
 * multiplied outside graph capture, every candidate is timed on the device stream (the real input, the
 * real weights of every layer in turn so L2 is as cold as in a step, the output into a buffer of its
 * own) and the winner is kept for that shape from then on, graph captures included. Off with
 * {@code -Dkvass.cuda.gemmTune=off}: cublasGemmEx for every product, as before.
 *
 * <p>NOTE: the first product of a shape must not happen inside a capture (timing synchronizes): the
 * backend's graphs run every step eagerly before capturing it, which tunes it. A shape met first
 * inside a capture falls back to cublasGemmEx there.
 */
final class GemmTuner implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(GemmTuner.class);
    /** Products of this many tokens (powers of two: the decode graphs' batch buckets) are tuned. */
    static final int MIN_TOKENS = 9;
    static final int MAX_TOKENS = 256;
    /** Algorithms asked of cuBLASLt's heuristic per shape. */
    private static final int HEURISTICS = 48;
    /** Every candidate runs {@link #SCREEN_CALLS} times; this many of the fastest are then timed in full. */
    private static final int FINALISTS = 6;
    private static final int SCREEN_CALLS = 3;
    private static final int WARMUP = 3;
    private static final int REPS = 11;
    /** cuBLASLt wins only when at least this much faster than cublasGemmEx (noise is not a reason to switch). */
    private static final double MARGIN = 0.98;
    /** The stream is held back this long (plus per queued call) while the host queues timed launches. */
    private static final long HOLD_NS = 50_000;
    private static final long HOLD_NS_PER_CALL = 40_000;

    /** {@code ON}: the fastest; {@code LT}: the fastest cuBLASLt algorithm even when slower (tests); {@code OFF}: cublasGemmEx. */
    enum Mode {
        OFF, ON, LT;

        /** From {@code -Dkvass.cuda.gemmTune=on|off|lt} (default on). */
        static Mode fromProperty() {
            return valueOf(System.getProperty("kvass.cuda.gemmTune", "on").toUpperCase(Locale.ROOT));
        }
    }

    /** A weight matrix {@code [out, in]} of the model (every layer's products of one kind share it). */
    private record Matrix(int out, int in) {
    }

    /** A way to run one product: cublasGemmEx ({@code algo} null) or a cuBLASLt algorithm on its plan. */
    record Candidate(CuBlasLt.Plan plan, CuBlasLt.Algo algo) {
        String label() {
            return algo == null ? "cublasGemmEx" : algo.label();
        }
    }

    /**
     * One tuned shape: the winner's label and median microseconds, cublasGemmEx's, and how many candidates
     * were timed ({@code failed} of them would not run).
     */
    record Result(CuBlas.Product product, String winner, double winnerUs, double gemmExUs, int candidates, int failed,
                  double tuningMs) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "GEMM n %d [%d x %d] %s: %s %.1f us vs cublasGemmEx %.1f us (%.2fx); "
                    + "%d candidates (%d failed), tuned in %.0f ms", product.n(), product.out(), product.in(), product.mode(),
                    winner, winnerUs, gemmExUs, gemmExUs / winnerUs, candidates, failed, tuningMs);
        }
    }

    private final CudaDevice device;
    private final CudaKernels kernels;
    private final CuBlas blas;
    private final CuBlasLt lt;
    private final Map<Matrix, long[]> weights = new HashMap<>();
    private final Map<CuBlas.Product, Candidate> choices = new HashMap<>();
    private final Map<CuBlas.Product, Result> results = new LinkedHashMap<>();
    private final Set<CuBlas.Product> capturedUntuned = new HashSet<>();
    private final CUevent[] events = new CUevent[REPS + 1];
    private DeviceBuffer output;   // allocated at the first tuning: a step that never tunes never needs it
    private long outputBytes;
    private Mode mode;
    private Mode choicesMode;   // the mode the choices were made in

    GemmTuner(CudaDevice device, CudaKernels kernels, CuBlas blas, Mode mode) {
        this.device = device;
        this.kernels = kernels;
        this.blas = blas;
        this.lt = new CuBlasLt(device, blas.workspace);
        this.mode = mode;
        this.choicesMode = mode;
        for (int i = 0; i < events.length; i++) {
            events[i] = new CUevent();
            cuEventCreate(events[i], 0);
        }
    }

    /** A weight the backend multiplies by; timing a shape cycles through all of that shape's weights. */
    void addWeight(int out, int in, long address) {
        weights.merge(new Matrix(out, in), new long[] {address}, (a, b) -> {
            long[] all = Arrays.copyOf(a, a.length + 1);
            all[a.length] = b[0];
            return all;
        });
        outputBytes = Math.max(outputBytes, 4L * MAX_TOKENS * out);
    }

    Mode mode() {
        return mode;
    }

    /**
     * Switches mode (the caller drops graphs that baked in the old one). Choices are kept through OFF and
     * back (benchmarks alternate), forgotten between ON and LT, which choose differently.
     */
    void setMode(Mode mode) {
        if (mode != Mode.OFF && mode != choicesMode) {
            choices.clear();
            results.clear();
            choicesMode = mode;
        }
        this.mode = mode;
    }

    /** Whether products of {@code n} tokens get tuned: the decode graphs' buckets past the skinny path. */
    static boolean tunes(int n) {
        return n >= MIN_TOKENS && n <= MAX_TOKENS && Integer.bitCount(n) == 1;
    }

    /** {@code y[n, out] (+)= x[n, in] w[out, in]^T} on this shape's choice (tuned now if it has none). */
    void linear(long w, long x, long y, int n, int out, int in, CuBlas.Out outMode) {
        Candidate c = mode == Mode.OFF || !tunes(n) ? null : choice(new CuBlas.Product(n, out, in, outMode), w, x, y);
        if (c == null || c.algo() == null || !aligned(c.plan().alignment, w, x, y)) {
            blas.linear(w, x, y, n, out, in, outMode);
            return;
        }
        if (!run(c, w, x, y)) {
            CuBlas.Product p = c.plan().product;
            throw new IllegalStateException("cublasLtMatmul " + p.n() + "x" + p.out() + "x" + p.in() + " (" + c.label()
                    + ") failed");
        }
    }

    private Candidate choice(CuBlas.Product p, long w, long x, long y) {
        Candidate c = choices.get(p);
        if (c != null) {
            return c;
        }
        if (capturing()) {
            if (capturedUntuned.add(p)) {
                LOG.warn("GEMM n {} [{} x {}] {} first met inside a graph capture: cublasGemmEx there, untuned", p.n(),
                        p.out(), p.in(), p.mode());
            }
            return null;
        }
        tune(p, w, x, y);
        return choices.get(p);
    }

    /** The results of the shapes tuned so far, in order. */
    List<Result> results() {
        return List.copyOf(results.values());
    }

    /**
     * Times every candidate for {@code p} (weights {@code w} or every registered weight of its shape, input
     * {@code x}; {@code y} only for its alignment) and keeps the winner for {@code p}.
     */
    Result tune(CuBlas.Product p, long w, long x, long y) {
        long start = System.nanoTime();
        long[] rotation = weights.getOrDefault(new Matrix(p.out(), p.in()), new long[] {w});
        List<Candidate> candidates = candidates(p, rotation, w, x, y);
        long out = output(p).address();
        double[] screen = new double[candidates.size()];
        int failed = 0;
        for (int i = 0; i < candidates.size(); i++) {
            double[] us = time(candidates.get(i), rotation, x, out, 1, SCREEN_CALLS);
            screen[i] = us == null ? Double.NaN : Arrays.stream(us).min().orElseThrow();
            failed += us == null ? 1 : 0;
        }
        double gemmEx = median(time(candidates.get(0), rotation, x, out, WARMUP, REPS));
        Candidate best = candidates.get(0);
        double bestUs = Double.MAX_VALUE;
        Integer[] order = ranked(screen);
        for (int f = 0, timed = 0; f < order.length && timed < FINALISTS; f++) {
            Candidate c = candidates.get(order[f]);
            if (c.algo() == null || Double.isNaN(screen[order[f]])) {
                continue;
            }
            timed++;
            double[] us = time(c, rotation, x, out, WARMUP, REPS);
            if (us != null && median(us) < bestUs) {
                bestUs = median(us);
                best = c;
            }
        }
        // cublasGemmEx timed before and after the finalists: drift in clocks does not make cuBLASLt look faster.
        gemmEx = Math.min(gemmEx, median(time(candidates.get(0), rotation, x, out, WARMUP, REPS)));
        boolean ltWins = best.algo() != null && (mode == Mode.LT || bestUs < MARGIN * gemmEx);
        Candidate winner = ltWins ? best : candidates.get(0);
        choices.put(p, winner);
        Result r = new Result(p, winner.label(), ltWins ? bestUs : gemmEx, gemmEx, candidates.size(), failed,
                (System.nanoTime() - start) / 1e6);
        results.put(p, r);
        LOG.info("{}", r);
        return r;
    }

    /**
     * Every way to run {@code p} with these weights and pointers: cublasGemmEx first, then cuBLASLt's
     * algorithms (none if cuBLASLt fails to offer any).
     */
    List<Candidate> candidates(CuBlas.Product p, long[] rotation, long w, long x, long y) {
        CuBlasLt.Plan plan = lt.plan(p, alignment(rotation, w, x, y));
        List<Candidate> candidates = new ArrayList<>();
        candidates.add(new Candidate(plan, null));
        try {
            for (CuBlasLt.Algo a : lt.algorithms(plan, HEURISTICS)) {
                candidates.add(new Candidate(plan, a));
            }
        } catch (IllegalStateException e) {
            LOG.warn("cuBLASLt offers no algorithm for {}: {}", p, e.getMessage());
        }
        return candidates;
    }

    /** Launches {@code c} once on the device stream; false when cuBLASLt refuses it. */
    boolean run(Candidate c, long w, long x, long y) {
        CuBlas.Product p = c.plan().product;
        if (c.algo() == null) {
            blas.linear(w, x, y, p.n(), p.out(), p.in(), p.mode());
            return true;
        }
        return lt.matmul(c.plan(), c.algo().algo(), w, x, y) == 0;
    }

    /**
     * Microseconds of each of {@code calls} launches of {@code c} after {@code warmup} more, queued behind a
     * spin so that they run back to back (not at the host's pace); null when a launch fails.
     */
    private double[] time(Candidate c, long[] rotation, long x, long y, int warmup, int calls) {
        kernels.spin(HOLD_NS + HOLD_NS_PER_CALL * (warmup + calls));
        int r = 0;
        boolean ok = true;
        for (int i = 0; i < warmup && ok; i++) {
            ok = run(c, rotation[r++ % rotation.length], x, y);
        }
        cuEventRecord(events[0], device.stream());
        for (int i = 0; i < calls && ok; i++) {
            ok = run(c, rotation[r++ % rotation.length], x, y);
            cuEventRecord(events[i + 1], device.stream());
        }
        device.synchronize();
        if (!ok) {
            return null;
        }
        double[] us = new double[calls];
        float[] ms = new float[1];
        for (int i = 0; i < calls; i++) {
            cuEventElapsedTime(ms, events[i], events[i + 1]);
            us[i] = 1000.0 * ms[0];
        }
        return us;
    }

    /**
     * The timing output, sized at first for {@link #MAX_TOKENS} rows of the widest registered weight; a larger
     * product (of no registered weight) replaces it (the device frees the old one when it closes).
     */
    private DeviceBuffer output(CuBlas.Product p) {
        if (output == null || output.bytes() < p.outputBytes()) {
            output = device.allocate(Math.max(outputBytes, p.outputBytes()), "GEMM tuning output");
            device.zero(output);
        }
        return output;
    }

    private boolean capturing() {
        int[] status = new int[1];
        cuStreamIsCapturing(device.stream(), status);
        return status[0] != 0;
    }

    /** The largest power of two (at most 256) every address is a multiple of. */
    private static int alignment(long[] rotation, long w, long x, long y) {
        long bits = w | x | y;
        for (long a : rotation) {
            bits |= a;
        }
        return (int) Math.min(256, Long.lowestOneBit(bits | 256));
    }

    private static boolean aligned(int alignment, long w, long x, long y) {
        return ((w | x | y) & (alignment - 1)) == 0;
    }

    /** Candidate indices by screening time, the ones that failed last. */
    private static Integer[] ranked(double[] screen) {
        Integer[] order = new Integer[screen.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(Double.isNaN(screen[a]) ? Double.MAX_VALUE : screen[a],
                Double.isNaN(screen[b]) ? Double.MAX_VALUE : screen[b]));
        return order;
    }

    /** The median of launch times (cublasGemmEx's never fail to launch: cuBLAS throws first). */
    private static double median(double[] v) {
        double[] sorted = v.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    @Override
    public void close() {
        for (CUevent e : events) {
            cuEventDestroy(e);
        }
        lt.close();
    }
}
