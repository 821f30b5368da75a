package io.kvass.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Go/no-go probe for a lossless 12-bit bf16 format: single-row GEMV throughput (weights/s) of three inner
 * loops over a {@code [rows, 2048]} matrix, hot in L2 and streamed from DRAM, on 1 and 2 threads.
 *
 * <ul>
 *   <li>{@code bf16}: the production kernel's loop (int lanes, even = lane << 16, odd = lane & 0xFFFF0000).
 *   <li>{@code i32}: 128-weight blocks [64 low bytes][64 low bytes][64 bytes of nibble codes]; int lane i of a
 *       low load holds weights i, 16+i, 32+i, 48+i in its bytes, of the code load 8 nibbles; fp32 bits =
 *       vpermd(table << 24, code) | low << 16. x needs no reordering.
 *   <li>{@code s16}: 64-weight blocks [64 low bytes][32 bytes of codes, weight j low nibble, j+32 high];
 *       both zero-extended to short lanes, high byte = vpermw(table << 8, code) — one lookup per 32 weights —
 *       OR'd with the low byte, then the bf16 kernel's even/odd widening.
 * </ul>
 *
 * <pre>PackedGemvProbe [hotRows=64] [coldRows=32768] [seconds=2] [rounds=3]</pre>
 */
public final class PackedGemvProbe {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_512;
    private static final VectorSpecies<Byte> B256 = ByteVector.SPECIES_256;
    private static final int COLS = 2048;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private PackedGemvProbe() {
    }

    /** One matrix in all three layouts, plus x in the orders the kernels want. */
    record Mats(int rows, MemorySegment bf16, MemorySegment i32, MemorySegment s16, int[] tableI, short[] tableS) {
    }

    public static void main(String[] args) throws Exception {
        int hotRows = 64, coldRows = 32768, rounds = 3;
        double seconds = 2;
        for (String a : args) {
            String[] kv = a.split("=", 2);
            switch (kv[0]) {
                case "hotRows" -> hotRows = Integer.parseInt(kv[1]);
                case "coldRows" -> coldRows = Integer.parseInt(kv[1]);
                case "seconds" -> seconds = Double.parseDouble(kv[1]);
                case "rounds" -> rounds = Integer.parseInt(kv[1]);
                default -> throw new IllegalArgumentException(a);
            }
        }
        Arena arena = Arena.global();
        Mats hot = build(hotRows, arena, 1), cold = build(coldRows, arena, 2);
        Random rnd = new Random(3);
        float[] x = new float[COLS];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        float[] xs = split(x);
        check(hot, x, xs);
        System.out.printf(Locale.ROOT, "hot: %d rows (%d KB bf16), cold: %d rows (%d MB bf16)%n", hotRows,
                hot.bf16.byteSize() >> 10, coldRows, cold.bf16.byteSize() >> 20);
        for (int round = 0; round < rounds; round++) {
            for (String where : new String[] {"hot", "cold"}) {
                Mats m = where.equals("hot") ? hot : cold;
                for (int threads = 1; threads <= 2; threads++) {
                    for (String kernel : new String[] {"bf16", "i32", "s16"}) {
                        double gws = run(kernel, m, x, xs, threads, seconds);
                        double bytesPerWeight = kernel.equals("bf16") ? 2 : 1.5;
                        System.out.printf(Locale.ROOT, "round %d %-4s threads=%d %-4s %6.2f Gweights/s  %6.2f GB/s%n",
                                round, where, threads, kernel, gws, gws * bytesPerWeight);
                    }
                }
            }
        }
    }

    private static Mats build(int rows, Arena arena, long seed) {
        Random rnd = new Random(seed);
        long n = (long) rows * COLS;
        MemorySegment bf16 = arena.allocate(n * 2, 64);
        int[] counts = new int[256];
        for (long i = 0; i < n; i++) {
            short b = (short) (Float.floatToRawIntBits((float) (rnd.nextGaussian() * 0.02)) >>> 16);
            bf16.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, b);
            counts[(b >>> 8) & 0xFF]++;
        }
        // Table: the 16 most frequent high bytes (escapes are rare and ignored by this probe: they decode as
        // whatever code 0 is, which changes no timing).
        Integer[] order = new Integer[256];
        for (int i = 0; i < 256; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Integer.compare(counts[b], counts[a]));
        int[] code = new int[256];
        int[] tableI = new int[16];
        short[] tableS = new short[32];
        for (int k = 0; k < 16; k++) {
            code[order[k]] = k;
            tableI[k] = order[k] << 24;
            tableS[k] = tableS[k + 16] = (short) (order[k] << 8);
        }
        MemorySegment i32 = arena.allocate(n * 3 / 2, 64), s16 = arena.allocate(n * 3 / 2, 64);
        for (long blk = 0; blk < n / 128; blk++) {
            long o = blk * 192;
            for (int j = 0; j < 128; j++) {
                int w = bf16.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, blk * 128 + j) & 0xFFFF;
                int half = j / 64, jj = j % 64;
                i32.set(ValueLayout.JAVA_BYTE, o + half * 64 + 4 * (jj % 16) + jj / 16, (byte) w);
                long co = o + 128 + 4 * (j % 16) + (j / 16) / 2;
                int shift = ((j / 16) % 2) * 4;
                byte prev = i32.get(ValueLayout.JAVA_BYTE, co);
                i32.set(ValueLayout.JAVA_BYTE, co, (byte) (prev | code[w >>> 8] << shift));
            }
        }
        for (long blk = 0; blk < n / 64; blk++) {
            long o = blk * 96;
            for (int j = 0; j < 64; j++) {
                int w = bf16.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, blk * 64 + j) & 0xFFFF;
                s16.set(ValueLayout.JAVA_BYTE, o + j, (byte) w);
                long co = o + 64 + j % 32;
                byte prev = s16.get(ValueLayout.JAVA_BYTE, co);
                s16.set(ValueLayout.JAVA_BYTE, co, (byte) (prev | code[w >>> 8] << (j / 32 * 4)));
            }
        }
        return new Mats(rows, bf16, i32, s16, tableI, tableS);
    }

    /** x with each 32-column block reordered to [even columns, odd columns] (the bf16 kernel's order). */
    private static float[] split(float[] x) {
        float[] xs = new float[x.length];
        for (int b = 0; b < x.length; b += 32) {
            for (int k = 0; k < 16; k++) {
                xs[b + k] = x[b + 2 * k];
                xs[b + 16 + k] = x[b + 2 * k + 1];
            }
        }
        return xs;
    }

    /** All kernels agree (to fp32 rounding) on the first rows, escapes aside: the probe times correct code. */
    private static void check(Mats m, float[] x, float[] xs) {
        for (int r = 0; r < 4; r++) {
            float a = bf16Row(m.bf16, r, xs), b = i32Row(m.i32, r, x, IntVector.fromArray(I, m.tableI, 0));
            float c = s16Row(m.s16, r, xs, ShortVector.fromArray(S, m.tableS, 0));
            if (Math.abs(a - b) > 1e-2 * Math.abs(a) + 0.05 || Math.abs(a - c) > 1e-2 * Math.abs(a) + 0.05) {
                throw new AssertionError("row " + r + ": bf16 " + a + " i32 " + b + " s16 " + c);
            }
        }
    }

    private static double run(String kernel, Mats m, float[] x, float[] xs, int threads, double seconds)
            throws Exception {
        CyclicBarrier start = new CyclicBarrier(threads + 1);
        long[] weights = new long[threads];
        long deadline = (long) (seconds * 1e9);
        Thread[] ts = new Thread[threads];
        long[] t0 = new long[1];
        for (int t = 0; t < threads; t++) {
            int id = t;
            ts[t] = new Thread(() -> {
                int r0 = m.rows * id / threads, r1 = m.rows * (id + 1) / threads;
                float[] out = new float[m.rows];
                IntVector ti = IntVector.fromArray(I, m.tableI, 0);
                ShortVector tsv = ShortVector.fromArray(S, m.tableS, 0);
                pass(kernel, m, x, xs, r0, r1, out, ti, tsv); // warm-up
                pass(kernel, m, x, xs, r0, r1, out, ti, tsv);
                try {
                    start.await();
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
                long begin = System.nanoTime(), n = 0;
                while (System.nanoTime() - begin < deadline) {
                    pass(kernel, m, x, xs, r0, r1, out, ti, tsv);
                    n += (long) (r1 - r0) * COLS;
                }
                weights[id] = n;
                if (out[r0] == 12345f) {
                    System.out.print("");
                }
            });
            ts[t].start();
        }
        start.await();
        t0[0] = System.nanoTime();
        for (Thread t : ts) {
            t.join();
        }
        double s = (System.nanoTime() - t0[0]) / 1e9;
        return Arrays.stream(weights).sum() / s / 1e9;
    }

    private static void pass(String kernel, Mats m, float[] x, float[] xs, int r0, int r1, float[] out,
                             IntVector ti, ShortVector tsv) {
        switch (kernel) {
            case "bf16" -> {
                for (int r = r0; r < r1; r++) {
                    out[r] = bf16Row(m.bf16, r, xs);
                }
            }
            case "i32" -> {
                for (int r = r0; r < r1; r++) {
                    out[r] = i32Row(m.i32, r, x, ti);
                }
            }
            default -> {
                for (int r = r0; r < r1; r++) {
                    out[r] = s16Row(m.s16, r, xs, tsv);
                }
            }
        }
    }

    static float bf16Row(MemorySegment w, int r, float[] xs) {
        long base = (long) r * COLS * 2;
        FloatVector even = FloatVector.zero(F), odd = even;
        for (int c = 0; c < COLS; c += 32) {
            IntVector p = IntVector.fromMemorySegment(I, w, base + c * 2L, LE);
            even = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c), even);
            odd = p.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c + 16), odd);
        }
        return even.add(odd).reduceLanes(VectorOperators.ADD);
    }

    static float i32Row(MemorySegment w, int r, float[] x, IntVector table) {
        long base = (long) r * COLS * 3 / 2;
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c = 0; c < COLS; c += 128) {
            long o = base + c * 3L / 2;
            IntVector lo = IntVector.fromMemorySegment(I, w, o, LE);
            IntVector hi = IntVector.fromMemorySegment(I, w, o + 64, LE);
            IntVector cd = IntVector.fromMemorySegment(I, w, o + 128, LE);
            a0 = decode(lo.lanewise(VectorOperators.LSHL, 16), cd, table).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = decode(lo.lanewise(VectorOperators.LSHL, 8), cd.lanewise(VectorOperators.LSHR, 4), table)
                    .fma(FloatVector.fromArray(F, x, c + 16), a1);
            a0 = decode(lo, cd.lanewise(VectorOperators.LSHR, 8), table).fma(FloatVector.fromArray(F, x, c + 32), a0);
            a1 = decode(lo.lanewise(VectorOperators.LSHR, 8), cd.lanewise(VectorOperators.LSHR, 12), table)
                    .fma(FloatVector.fromArray(F, x, c + 48), a1);
            a0 = decode(hi.lanewise(VectorOperators.LSHL, 16), cd.lanewise(VectorOperators.LSHR, 16), table)
                    .fma(FloatVector.fromArray(F, x, c + 64), a0);
            a1 = decode(hi.lanewise(VectorOperators.LSHL, 8), cd.lanewise(VectorOperators.LSHR, 20), table)
                    .fma(FloatVector.fromArray(F, x, c + 80), a1);
            a0 = decode(hi, cd.lanewise(VectorOperators.LSHR, 24), table).fma(FloatVector.fromArray(F, x, c + 96), a0);
            a1 = decode(hi.lanewise(VectorOperators.LSHR, 8), cd.lanewise(VectorOperators.LSHR, 28), table)
                    .fma(FloatVector.fromArray(F, x, c + 112), a1);
        }
        return a0.add(a1).reduceLanes(VectorOperators.ADD);
    }

    /** low: the weight's low byte at bits 16..23 (other bits ignored); code in bits 0..3 (others ignored by the wrap). */
    private static FloatVector decode(IntVector low, IntVector code, IntVector table) {
        return code.selectFrom(table).or(low.and(0x00FF0000)).reinterpretAsFloats();
    }

    static float s16Row(MemorySegment w, int r, float[] xs, ShortVector table) {
        long base = (long) r * COLS * 3 / 2;
        FloatVector even = FloatVector.zero(F), odd = even;
        for (int c = 0; c < COLS; c += 64) {
            long o = base + c * 3L / 2;
            ShortVector lowA = zext(w, o), lowB = zext(w, o + 32), codes = zext(w, o + 64);
            IntVector pa = codes.selectFrom(table).or(lowA).reinterpretAsInts();
            IntVector pb = codes.lanewise(VectorOperators.LSHR, 4).selectFrom(table).or(lowB).reinterpretAsInts();
            even = pa.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c), even);
            odd = pa.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c + 16), odd);
            even = pb.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c + 32), even);
            odd = pb.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(F, xs, c + 48), odd);
        }
        return even.add(odd).reduceLanes(VectorOperators.ADD);
    }

    private static ShortVector zext(MemorySegment w, long o) {
        return (ShortVector) ByteVector.fromMemorySegment(B256, w, o, LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
    }
}
