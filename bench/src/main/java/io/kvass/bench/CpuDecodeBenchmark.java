package io.kvass.bench;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.cpu.CpuThreads;
import io.kvass.worker.model.LlamaTensors;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * CPU decode throughput at several batch sizes, next to the memory-bandwidth floor of the same step
 * measured in the same run: a decode step must stream every weight it multiplies once, so
 * {@code decodeBytes / bandwidth} is the fastest a step can be.
 *
 * <pre>CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N] [bw_reps=7]</pre>
 */
public final class CpuDecodeBenchmark {
    private static final VectorSpecies<Long> L = LongVector.SPECIES_PREFERRED;
    private static final int BLOCK_SIZE = 16;

    record Options(int[] batches, int steps, int warmup, int prompt, int threads, int bwReps) {
        static Options parse(String[] args) {
            int[] batches = {1, 16};
            int steps = 32, warmup = 4, prompt = 32, bwReps = 7;
            int threads = Runtime.getRuntime().availableProcessors();
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
                    case "bw_reps" -> bwReps = Integer.parseInt(kv[1]);
                    default -> throw new IllegalArgumentException("unknown option '" + kv[0] + "'");
                }
            }
            return new Options(batches, steps, warmup, prompt, threads, bwReps);
        }
    }

    /** One batch size's result; times in ms. */
    record DecodeResult(int batch, double prefillMs, int prefillTokens, double medianMs, double meanMs, double minMs) {
        double tokensPerSecond() {
            return batch * 1000 / medianMs;
        }

        double meanTokensPerSecond() {
            return batch * 1000 / meanMs;
        }
    }

    /** Streaming every decode weight once: best and median over repetitions. */
    record Floor(long bytes, double bestMs, double medianMs) {
        double gbPerSecond() {
            return bytes / bestMs / 1e6;
        }
    }

    private CpuDecodeBenchmark() {
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: CpuDecodeBenchmark MODEL_DIR [batch=1,16] [steps=32] [warmup=4] [prompt=32] [threads=N] [bw_reps=7]");
            System.exit(2);
        }
        Options o = Options.parse(args);
        Path dir = Path.of(args[0]);
        int maxBatch = Arrays.stream(o.batches()).max().orElse(1);
        int blocksPerSeq = Math.ceilDiv(o.prompt() + o.warmup() + o.steps(), BLOCK_SIZE);
        try (LoadedModel model = LoadedModel.load(dir);
             CpuBackend backend = new CpuBackend(model, maxBatch * blocksPerSeq, BLOCK_SIZE, o.threads());
             CpuThreads threads = new CpuThreads(o.threads())) {
            List<MemorySegment> weights = decodeSegments(model.tensors());
            long bytes = weights.stream().mapToLong(MemorySegment::byteSize).sum();
            if (bytes != backend.decodeBytes()) {
                throw new IllegalStateException("floor streams " + bytes + " bytes, the backend " + backend.decodeBytes());
            }
            System.out.printf(Locale.ROOT, "model %s: %s, %d threads, %.3f GB of weights per decode step%n",
                    dir, model.config().architecture(), o.threads(), bytes / 1e9);
            Floor floor = floor(weights, threads, o.bwReps());
            List<DecodeResult> results = new ArrayList<>();
            for (int batch : o.batches()) {
                results.add(decode(backend, batch, blocksPerSeq, o));
            }
            // Again after decoding: the better of the two, so a noisy first pass does not flatter the kernels.
            Floor again = floor(weights, threads, o.bwReps());
            report(o, floor.bestMs() <= again.bestMs() ? floor : again, results);
        }
    }

    private static DecodeResult decode(CpuBackend backend, int batch, int blocksPerSeq, Options o) {
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
        double[] times = new double[o.steps()];
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
            if (i >= 0) {
                times[i] = (System.nanoTime() - start) / 1e6;
            }
        }
        Arrays.sort(times);
        DecodeResult r = new DecodeResult(batch, prefillMs, batch * o.prompt(), median(times),
                Arrays.stream(times).average().orElse(0), times[0]);
        System.out.printf(Locale.ROOT, "batch %2d: %.1f ms/step median (mean %.1f, min %.1f) -> %.2f tok/s; prefill %d tokens in %.0f ms%n",
                batch, r.medianMs(), r.meanMs(), r.minMs(), r.tokensPerSecond(), r.prefillTokens(), prefillMs);
        return r;
    }

    /** The weights a decode step multiplies, as the backend counts them: layer matrices and the LM head. */
    private static List<MemorySegment> decodeSegments(LlamaTensors t) {
        List<MemorySegment> list = new ArrayList<>();
        for (LlamaTensors.Layer l : t.layers()) {
            Stream.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()).map(Tensor::data).forEach(list::add);
        }
        list.add(t.lmHead().data());
        return list;
    }

    /**
     * Streams all segments once per repetition, split into one contiguous byte range per thread, with a
     * vector sum that does almost no work per byte: the read bandwidth the kernels cannot beat.
     */
    private static Floor floor(List<MemorySegment> segments, CpuThreads threads, int reps) {
        long total = segments.stream().mapToLong(MemorySegment::byteSize).sum();
        long[] sink = new long[1];
        double[] ms = new double[reps + 1];
        for (int rep = 0; rep <= reps; rep++) { // rep 0 faults the pages in and compiles the loop
            long t0 = System.nanoTime();
            threads.forRange(threads.threads(), (p, pEnd) -> {
                long from = align(total * p / threads.threads()), to = align(total * pEnd / threads.threads());
                long s = stream(segments, from, to);
                synchronized (sink) {
                    sink[0] += s;
                }
                return 0;
            });
            ms[rep] = (System.nanoTime() - t0) / 1e6;
        }
        double[] timed = Arrays.copyOfRange(ms, 1, ms.length);
        Arrays.sort(timed);
        if (sink[0] == 42) {
            System.out.println(); // keeps the sum observable
        }
        Floor f = new Floor(total, timed[0], median(timed));
        System.out.printf(Locale.ROOT, "floor: %.3f GB in %.1f ms best (median %.1f) -> %.1f GB/s, %.2f tok/s at batch 1%n",
                total / 1e9, f.bestMs(), f.medianMs(), f.gbPerSecond(), 1000 / f.bestMs());
        return f;
    }

    private static long align(long offset) {
        return offset & ~(L.vectorByteSize() * 4L - 1);
    }

    /** Sums bytes {@code [from, to)} of the segments' concatenation as longs. */
    private static long stream(List<MemorySegment> segments, long from, long to) {
        long sum = 0, base = 0;
        for (MemorySegment seg : segments) {
            long start = Math.max(from, base) - base, end = Math.min(to, base + seg.byteSize()) - base;
            base += seg.byteSize();
            if (start >= end) {
                continue;
            }
            int w = L.vectorByteSize();
            LongVector a0 = LongVector.zero(L), a1 = a0, a2 = a0, a3 = a0;
            long i = start;
            for (; i + 4L * w <= end; i += 4L * w) {
                a0 = a0.add(LongVector.fromMemorySegment(L, seg, i, ByteOrder.nativeOrder()));
                a1 = a1.add(LongVector.fromMemorySegment(L, seg, i + w, ByteOrder.nativeOrder()));
                a2 = a2.add(LongVector.fromMemorySegment(L, seg, i + 2L * w, ByteOrder.nativeOrder()));
                a3 = a3.add(LongVector.fromMemorySegment(L, seg, i + 3L * w, ByteOrder.nativeOrder()));
            }
            sum += a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
            for (; i < end; i++) {
                sum += seg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i);
            }
        }
        return sum;
    }

    private static void report(Options o, Floor floor, List<DecodeResult> results) {
        System.out.println();
        System.out.println("| batch | ms/step (median) | ms/step (mean) | tok/s (median) | tok/s (mean) | floor ms/step | % of floor speed |");
        System.out.println("|------:|-----------------:|---------------:|---------------:|-------------:|--------------:|-----------------:|");
        for (DecodeResult r : results) {
            System.out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2f | %.2f | %.1f | %.0f%% |%n", r.batch(), r.medianMs(),
                    r.meanMs(), r.tokensPerSecond(), r.meanTokensPerSecond(), floor.bestMs(), 100 * floor.bestMs() / r.medianMs());
        }
        StringBuilder json = new StringBuilder();
        json.append(String.format(Locale.ROOT,
                "{\"bench\":\"cpu_decode\",\"threads\":%d,\"steps\":%d,\"prompt\":%d,\"decode_bytes\":%d,"
                        + "\"bandwidth_gbps\":%.2f,\"floor_ms\":%.2f,\"floor_median_ms\":%.2f,\"results\":[",
                o.threads(), o.steps(), o.prompt(), floor.bytes(), floor.gbPerSecond(), floor.bestMs(), floor.medianMs()));
        for (int i = 0; i < results.size(); i++) {
            DecodeResult r = results.get(i);
            json.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT,
                    "{\"batch\":%d,\"median_ms\":%.2f,\"mean_ms\":%.2f,\"min_ms\":%.2f,\"tok_s\":%.3f,\"mean_tok_s\":%.3f,"
                            + "\"prefill_ms\":%.1f,\"prefill_tokens\":%d}",
                    r.batch(), r.medianMs(), r.meanMs(), r.minMs(), r.tokensPerSecond(), r.meanTokensPerSecond(),
                    r.prefillMs(), r.prefillTokens()));
        }
        System.out.println(json.append("]}"));
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

    private static double median(double[] sorted) {
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
