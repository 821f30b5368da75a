package io.kvass.bench;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.cpu.CpuThreads;
import io.kvass.worker.cpu.CpuWeightFormat;
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
import java.util.function.ToDoubleFunction;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * CPU decode throughput at several batch sizes, next to the memory-bandwidth floor of the same step
 * measured in the same run: a decode step must stream every weight it multiplies once, so
 * {@code decodeBytes / bandwidth} is the fastest a step can be.
 *
 * <pre>CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N] [weights=mmap,hugepages]
 *     [format=packed,bf16]</pre>
 *
 * <p>With several {@code weights} or {@code format}s, one backend per kind of weight memory and format decodes the
 * same prompts and the backends take turns step by step, each step followed by the floor pass over its own pages.
 */
public final class CpuDecodeBenchmark {
    private static final VectorSpecies<Long> L = LongVector.SPECIES_PREFERRED;
    private static final int BLOCK_SIZE = 16;
    /** Bytes per floor loop iteration; every decode matrix is a multiple of it. */
    private static final int UNIT = 2 * L.vectorByteSize();

    record Options(int[] batches, int steps, int warmup, int prompt, int threads, List<CpuWeightMemory> weights,
                   List<CpuWeightFormat> formats) {
        static Options parse(String[] args) {
            int[] batches = {1, 16};
            int steps = 32, warmup = 4, prompt = 32;
            int threads = Runtime.getRuntime().availableProcessors();
            List<CpuWeightMemory> weights = List.of(CpuWeightMemory.DEFAULT);
            List<CpuWeightFormat> formats = List.of(CpuWeightFormat.DEFAULT);
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
                    case "weights" -> weights = Arrays.stream(kv[1].split(",")).map(CpuWeightMemory::parse).toList();
                    case "format" -> formats = Arrays.stream(kv[1].split(",")).map(CpuWeightFormat::parse).toList();
                    default -> throw new IllegalArgumentException("unknown option '" + kv[0] + "'");
                }
            }
            return new Options(batches, steps, warmup, prompt, threads, weights, formats);
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
    record DecodeResult(int batch, String weights, double prefillMs, int prefillTokens, Times steps, Times floor,
                        long bytes) {
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
            System.err.println("usage: CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N]"
                    + " [weights=mmap|hugepages|mmap,hugepages] [format=packed|bf16|packed,bf16]");
            System.exit(2);
        }
        Options o = Options.parse(args);
        Path dir = Path.of(args[0]);
        int maxBatch = Arrays.stream(o.batches()).max().orElse(1);
        int blocksPerSeq = Math.ceilDiv(o.prompt() + o.warmup() + o.steps(), BLOCK_SIZE);
        List<Variant> variants = new ArrayList<>();
        try (LoadedModel model = LoadedModel.load(dir);
             CpuThreads threads = new CpuThreads(o.threads())) {
            for (CpuWeightMemory memory : o.weights()) {
                for (CpuWeightFormat format : o.formats()) {
                    long start = System.nanoTime();
                    CpuBackend backend = new CpuBackend(model, maxBatch * blocksPerSeq, BLOCK_SIZE, o.threads(),
                            LoraCapacity.NONE, memory, format);
                    Variant v = new Variant((memory + "/" + format).toLowerCase(Locale.ROOT), backend);
                    variants.add(v);
                    System.out.printf(Locale.ROOT, "weights %s: loaded in %.1f s, %.3f GB per decode step;"
                                    + " AnonHugePages of this process now %.0f MB%n",
                            v.name(), (System.nanoTime() - start) / 1e9, v.bytes() / 1e9, anonHugePages() / 1e6);
                }
            }
            System.out.printf(Locale.ROOT, "model %s: %s, %d threads, %s, load average %.2f%n",
                    dir, model.config().architecture(), o.threads(), Runtime.version(), loadAverage());
            long[] sink = new long[1];
            for (Variant v : variants) {
                warmUp(v.segments(), threads, sink);
            }
            List<DecodeResult> results = new ArrayList<>();
            for (int batch : o.batches()) {
                results.addAll(decode(variants, batch, blocksPerSeq, o, v -> floorPass(v.segments(), threads, sink)));
            }
            // Other processes on the machine take cores and bandwidth: printed so a reader can discard a noisy run.
            System.out.printf(Locale.ROOT, "load average at the end %.2f%n", loadAverage());
            report(o, results, sink[0]);
        } finally {
            variants.forEach(v -> v.backend().close());
        }
    }

    /** A backend with its weights in one kind of memory and format, and the pages its floor pass reads. */
    record Variant(String name, CpuBackend backend, List<MemorySegment> segments) {
        /**
         * NOTE: the floor reads the very pages the kernels read (tiled copies, or the huge-page copy of
         * every matrix, the packed blocks), so it moves with the weight memory and format under test.
         */
        Variant(String name, CpuBackend backend) {
            this(name, backend, backend.decodeSegments());
            if (bytes() != backend.decodeBytes()) {
                throw new IllegalStateException("floor streams " + bytes() + " bytes, the backend " + backend.decodeBytes());
            }
        }

        long bytes() {
            return segments.stream().mapToLong(MemorySegment::byteSize).sum();
        }
    }

    /** One variant's sequences: their block tables and the logits they decode from next. */
    private static final class Sequences {
        final int[][] tables;
        List<float[][]> logits;
        final double[] steps;
        final double[] floor;
        double prefillMs;

        Sequences(int batch, int blocksPerSeq, int steps) {
            tables = new int[batch][blocksPerSeq];
            for (int s = 0; s < batch; s++) {
                for (int b = 0; b < blocksPerSeq; b++) {
                    tables[s][b] = s * blocksPerSeq + b; // contiguous per sequence
                }
            }
            this.steps = new double[steps];
            this.floor = new double[steps];
        }
    }

    /**
     * Prefills {@code batch} sequences on every variant, then times decode steps, variant after variant
     * within each step. NOTE: the memory bandwidth of a shared machine drifts by 2x within minutes, so a
     * floor pass follows every step, and variants alternate step by step to see the same minutes.
     */
    private static List<DecodeResult> decode(List<Variant> variants, int batch, int blocksPerSeq, Options o,
                                             ToDoubleFunction<Variant> floorPass) {
        int vocab = variants.getFirst().backend().config().vocabSize();
        int[][] prompts = new int[batch][];
        Random random = new Random(batch);
        for (int s = 0; s < batch; s++) {
            prompts[s] = random.ints(o.prompt(), 0, vocab).toArray();
        }
        List<Sequences> runs = new ArrayList<>();
        for (int i = 0; i < variants.size(); i++) {
            Sequences seqs = new Sequences(batch, blocksPerSeq, o.steps());
            List<SequenceForward> prefill = new ArrayList<>(batch);
            for (int s = 0; s < batch; s++) {
                prefill.add(new SequenceForward(prompts[s], 0, seqs.tables[s], LogitsMode.LAST));
            }
            long t0 = System.nanoTime();
            seqs.logits = variants.get(i).backend().forward(prefill);
            seqs.prefillMs = (System.nanoTime() - t0) / 1e6;
            runs.add(seqs);
        }
        for (int i = -o.warmup(); i < o.steps(); i++) {
            int position = o.prompt() + o.warmup() + i;
            for (int v = 0; v < variants.size(); v++) {
                Sequences seqs = runs.get(v);
                List<SequenceForward> step = new ArrayList<>(batch);
                for (int s = 0; s < batch; s++) {
                    step.add(new SequenceForward(new int[] {argmax(seqs.logits.get(s)[0])}, position, seqs.tables[s],
                            LogitsMode.LAST));
                }
                long start = System.nanoTime();
                seqs.logits = variants.get(v).backend().forward(step);
                double ms = (System.nanoTime() - start) / 1e6;
                double floorMs = floorPass.applyAsDouble(variants.get(v));
                if (i >= 0) {
                    seqs.steps[i] = ms;
                    seqs.floor[i] = floorMs;
                }
            }
        }
        List<DecodeResult> results = new ArrayList<>();
        for (int v = 0; v < variants.size(); v++) {
            Sequences seqs = runs.get(v);
            DecodeResult r = new DecodeResult(batch, variants.get(v).name(), seqs.prefillMs, batch * o.prompt(),
                    Times.of(seqs.steps), Times.of(seqs.floor), variants.get(v).bytes());
            System.out.printf(Locale.ROOT, "batch %2d, %s: %.1f ms/step median (mean %.1f, min %.1f) -> %.2f tok/s;"
                            + " floor %.1f ms median (min %.1f), %.1f GB/s; step/floor %.3f; prefill %d tokens in %.0f ms%n",
                    batch, r.weights(), r.steps().median(), r.steps().mean(), r.steps().min(), r.tokensPerSecond(),
                    r.floor().median(), r.floor().min(), r.bandwidthGbps(), r.steps().median() / r.floor().median(),
                    r.prefillTokens(), r.prefillMs());
            results.add(r);
        }
        return results;
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
        System.out.println("| batch | weights | ms/step median | ms/step mean | tok/s median | floor ms/step median | bandwidth GB/s | floor tok/s | step / floor |");
        System.out.println("|------:|---------|---------------:|-------------:|-------------:|---------------------:|---------------:|------------:|-------------:|");
        for (DecodeResult r : results) {
            System.out.printf(Locale.ROOT, "| %d | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |%n", r.batch(),
                    r.weights(), r.steps().median(),
                    r.steps().mean(), r.tokensPerSecond(), r.floor().median(), r.bandwidthGbps(),
                    r.batch() * 1000 / r.floor().median(), r.steps().median() / r.floor().median());
        }
        StringBuilder json = new StringBuilder(String.format(Locale.ROOT,
                "{\"bench\":\"cpu_decode\",\"threads\":%d,\"steps\":%d,\"prompt\":%d,\"results\":[",
                o.threads(), o.steps(), o.prompt()));
        for (int i = 0; i < results.size(); i++) {
            DecodeResult r = results.get(i);
            json.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT,
                    "{\"batch\":%d,\"weights\":\"%s\",\"decode_bytes\":%d,\"median_ms\":%.2f,\"mean_ms\":%.2f,\"min_ms\":%.2f,\"tok_s\":%.3f,"
                            + "\"floor_median_ms\":%.2f,\"floor_min_ms\":%.2f,\"bandwidth_gbps\":%.2f,"
                            + "\"prefill_ms\":%.1f,\"prefill_tokens\":%d}",
                    r.batch(), r.weights(), r.bytes(), r.steps().median(), r.steps().mean(),
                    r.steps().min(), r.tokensPerSecond(), r.floor().median(), r.floor().min(), r.bandwidthGbps(), r.prefillMs(), r.prefillTokens()));
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
