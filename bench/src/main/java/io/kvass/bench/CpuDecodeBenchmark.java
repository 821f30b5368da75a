package io.kvass.bench;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.cpu.CpuThreads;
import io.kvass.worker.cpu.CpuWeightMemory;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.model.LoadedModel;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.DoubleSupplier;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * CPU decode throughput at several batch sizes, next to the memory-bandwidth floor of the same step
 * measured in the same run: a decode step must stream every weight it multiplies once, so
 * {@code decodeBytes / bandwidth} is the fastest a step can be.
 *
 * <pre>CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N] [weights=mmap|hugepages]</pre>
 */
public final class CpuDecodeBenchmark {
    private static final VectorSpecies<Long> L = LongVector.SPECIES_PREFERRED;
    private static final int BLOCK_SIZE = 16;
    /** Bytes per floor loop iteration; every decode matrix is a multiple of it. */
    private static final int UNIT = 2 * L.vectorByteSize();

    record Options(int[] batches, int steps, int warmup, int prompt, int threads, CpuWeightMemory weights) {
        static Options parse(String[] args) {
            int[] batches = {1, 16};
            int steps = 32, warmup = 4, prompt = 32;
            int threads = Runtime.getRuntime().availableProcessors();
            CpuWeightMemory weights = CpuWeightMemory.MMAP;
            for (int i = 1; i < args.length; i++) {
                String[] kv = args[i].split("=", 2);
                if (kv.length != 2) {
                    throw new IllegalArgumentException("expected key=value, got '" + args[i] + "'");
                }
                switch (kv[0]) {
                    case "batch" -> batches = Arrays.stream(kv[1].split(",")).mapToInt(Integer::parseInt).toArray();
                    case "steps" -> steps = Integer.parseInt(kv[1]);
                    case "warmup" -> warmup = Integer.parseInt(kv[1]);
                    case "prompt" -> prompt = Integer.parseInt(kv[1]);
                    case "threads" -> threads = Integer.parseInt(kv[1]);
                    case "weights" -> weights = CpuWeightMemory.parse(kv[1]);
                    default -> throw new IllegalArgumentException("unknown option '" + kv[0] + "'");
                }
            }
            return new Options(batches, steps, warmup, prompt, threads, weights);
        }
    }

    /** Sorted samples in ms. */
    record Times(double[] sorted) {
        static Times of(double[] ms) {
            double[] s = ms.clone();
            Arrays.sort(s);
            return new Times(s);
        }

        double median() {
            int n = sorted.length;
            return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        }

        double mean() {
            return Arrays.stream(sorted).average().orElse(Double.NaN);
        }

        double min() {
            return sorted[0];
        }
    }

    /** One batch size: its decode steps, and a floor pass run right after each step. */
    record DecodeResult(int batch, double prefillMs, int prefillTokens, Times steps, Times floor, long bytes) {
        double tokensPerSecond() {
            return batch * 1000 / steps.median();
        }

        double bandwidthGbps() {
            return bytes / floor.median() / 1e6;
        }
    }

    private CpuDecodeBenchmark() {
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N] [weights=mmap|hugepages]");
            System.exit(2);
        }
        Options o = Options.parse(args);
        Path dir = Path.of(args[0]);
        int maxBatch = Arrays.stream(o.batches()).max().orElse(1);
        int blocksPerSeq = Math.ceilDiv(o.prompt() + o.warmup() + o.steps(), BLOCK_SIZE);
        long loadStart = System.nanoTime();
        try (LoadedModel model = LoadedModel.load(dir);
             CpuBackend backend = new CpuBackend(model, maxBatch * blocksPerSeq, BLOCK_SIZE, o.threads(),
                     LoraCapacity.NONE, o.weights());
             CpuThreads threads = new CpuThreads(o.threads())) {
            // NOTE: the floor reads the very pages the kernels read (the tiled copies, or the huge-page
            // copy of every matrix), so it moves with the weight memory under test.
            List<MemorySegment> weights = backend.decodeSegments();
            long bytes = weights.stream().mapToLong(MemorySegment::byteSize).sum();
            if (bytes != backend.decodeBytes()) {
                throw new IllegalStateException("floor streams " + bytes + " bytes, the backend " + backend.decodeBytes());
            }
            System.out.printf(Locale.ROOT, "model %s: %s, %d threads, %.3f GB of weights per decode step, %s, load average %.2f%n",
                    dir, model.config().architecture(), o.threads(), bytes / 1e9, Runtime.version(), loadAverage());
            System.out.printf(Locale.ROOT, "weights in %s, loaded in %.1f s; AnonHugePages of this process %.0f MB%n",
                    o.weights(), (System.nanoTime() - loadStart) / 1e9, anonHugePages() / 1e6);
            long[] sink = new long[1];
            warmUp(weights, threads, sink);
            List<DecodeResult> results = new ArrayList<>();
            for (int batch : o.batches()) {
                results.add(decode(backend, batch, blocksPerSeq, o, () -> floorPass(weights, threads, sink), bytes));
            }
            // Other processes on the machine take cores and bandwidth: printed so a reader can discard a noisy run.
            System.out.printf(Locale.ROOT, "load average at the end %.2f%n", loadAverage());
            report(o, results, sink[0]);
        }
    }

    /**
     * Prefills {@code batch} sequences, then times decode steps. NOTE: the memory bandwidth of a shared
     * machine drifts by 2x within minutes, so a floor pass follows every step and each batch size is
     * compared with the floor of its own minutes.
     */
    private static DecodeResult decode(CpuBackend backend, int batch, int blocksPerSeq, Options o,
                                       DoubleSupplier floorPass, long bytes) {
        int vocab = backend.config().vocabSize();
        Random random = new Random(batch);
        int[][] tables = new int[batch][blocksPerSeq];
        int[] next = new int[batch];
        List<SequenceForward> prefill = new ArrayList<>(batch);
        for (int s = 0; s < batch; s++) {
            for (int b = 0; b < blocksPerSeq; b++) {
                tables[s][b] = s * blocksPerSeq + b; // contiguous per sequence
            }
            prefill.add(new SequenceForward(random.ints(o.prompt(), 0, vocab).toArray(), 0, tables[s], LogitsMode.LAST));
        }
        long t0 = System.nanoTime();
        List<float[][]> logits = backend.forward(prefill);
        double prefillMs = (System.nanoTime() - t0) / 1e6;
        double[] steps = new double[o.steps()];
        double[] floor = new double[o.steps()];
        for (int i = -o.warmup(); i < o.steps(); i++) {
            for (int s = 0; s < batch; s++) {
                next[s] = argmax(logits.get(s)[0]);
            }
            List<SequenceForward> step = new ArrayList<>(batch);
            int position = o.prompt() + o.warmup() + i;
            for (int s = 0; s < batch; s++) {
                step.add(new SequenceForward(new int[] {next[s]}, position, tables[s], LogitsMode.LAST));
            }
            long start = System.nanoTime();
            logits = backend.forward(step);
            double ms = (System.nanoTime() - start) / 1e6;
            double floorMs = floorPass.getAsDouble();
            if (i >= 0) {
                steps[i] = ms;
                floor[i] = floorMs;
            }
        }
        DecodeResult r = new DecodeResult(batch, prefillMs, batch * o.prompt(), Times.of(steps), Times.of(floor), bytes);
        System.out.printf(Locale.ROOT, "batch %2d: %.1f ms/step median (mean %.1f, min %.1f) -> %.2f tok/s;"
                        + " floor %.1f ms median (min %.1f), %.1f GB/s; prefill %d tokens in %.0f ms%n",
                batch, r.steps().median(), r.steps().mean(), r.steps().min(), r.tokensPerSecond(), r.floor().median(),
                r.floor().min(), r.bandwidthGbps(), r.prefillTokens(), prefillMs);
        return r;
    }

    /**
     * One pass over every decode weight, each matrix split into one contiguous byte range per thread as
     * the kernels split it, with a vector sum that does almost no work per byte: the read bandwidth the
     * kernels cannot beat.
     */
    private static double floorPass(List<MemorySegment> segments, CpuThreads threads, long[] sink) {
        long t0 = System.nanoTime();
        for (MemorySegment seg : segments) {
            long units = seg.byteSize() / UNIT;
            threads.forRange(threads.threads(), (p, pEnd) -> {
                long s = stream(seg, units * p / threads.threads() * UNIT, units * pEnd / threads.threads() * UNIT);
                synchronized (sink) {
                    sink[0] += s;
                }
                return 0;
            });
        }
        return (System.nanoTime() - t0) / 1e6;
    }

    /** Gets {@link #stream} compiled by C2 on cached data, then faults every page in once. */
    private static void warmUp(List<MemorySegment> segments, CpuThreads threads, long[] sink) {
        MemorySegment head = segments.getFirst().asSlice(0, Math.min(segments.getFirst().byteSize(), 64 << 10));
        for (int i = 0; i < 20_000; i++) {
            sink[0] += stream(head, 0, head.byteSize() / UNIT * UNIT);
        }
        floorPass(segments, threads, sink);
    }

    /** Sums bytes {@code [from, to)} of a segment as longs; the length is a multiple of {@link #UNIT}. */
    private static long stream(MemorySegment seg, long from, long to) {
        int w = L.vectorByteSize();
        LongVector a0 = LongVector.zero(L), a1 = a0;
        for (long i = from; i < to; i += 2L * w) {
            a0 = a0.add(LongVector.fromMemorySegment(L, seg, i, ByteOrder.nativeOrder()));
            a1 = a1.add(LongVector.fromMemorySegment(L, seg, i + w, ByteOrder.nativeOrder()));
        }
        return a0.add(a1).reduceLanes(VectorOperators.ADD);
    }

    private static void report(Options o, List<DecodeResult> results, long sink) {
        System.out.println();
        System.out.println("| batch | ms/step median | ms/step mean | tok/s median | floor ms/step median | bandwidth GB/s | floor tok/s | step / floor |");
        System.out.println("|------:|---------------:|-------------:|-------------:|---------------------:|---------------:|------------:|-------------:|");
        for (DecodeResult r : results) {
            System.out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |%n", r.batch(), r.steps().median(),
                    r.steps().mean(), r.tokensPerSecond(), r.floor().median(), r.bandwidthGbps(),
                    r.batch() * 1000 / r.floor().median(), r.steps().median() / r.floor().median());
        }
        StringBuilder json = new StringBuilder(String.format(Locale.ROOT,
                "{\"bench\":\"cpu_decode\",\"threads\":%d,\"steps\":%d,\"prompt\":%d,\"decode_bytes\":%d,\"results\":[",
                o.threads(), o.steps(), o.prompt(), results.getFirst().bytes()));
        for (int i = 0; i < results.size(); i++) {
            DecodeResult r = results.get(i);
            json.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT,
                    "{\"batch\":%d,\"median_ms\":%.2f,\"mean_ms\":%.2f,\"min_ms\":%.2f,\"tok_s\":%.3f,"
                            + "\"floor_median_ms\":%.2f,\"floor_min_ms\":%.2f,\"bandwidth_gbps\":%.2f,"
                            + "\"prefill_ms\":%.1f,\"prefill_tokens\":%d}",
                    r.batch(), r.steps().median(), r.steps().mean(), r.steps().min(), r.tokensPerSecond(),
                    r.floor().median(), r.floor().min(), r.bandwidthGbps(), r.prefillMs(), r.prefillTokens()));
        }
        System.out.println(json.append("]}"));
        if (sink == 42) {
            System.out.println(); // keeps the floor's sums observable
        }
    }

    /** AnonHugePages of /proc/self/smaps_rollup: proof that the huge-page weights got huge pages. */
    private static long anonHugePages() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps_rollup"))) {
                if (line.startsWith("AnonHugePages:")) {
                    return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    private static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

}
