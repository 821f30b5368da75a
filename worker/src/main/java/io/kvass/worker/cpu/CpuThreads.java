package io.kvass.worker.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntBinaryOperator;

/**
 * The forward pass's own threads (one per core, the calling thread among them). Work is split into as
 * many contiguous ranges as threads, so each thread streams its own slice of every weight matrix.
 *
 * <p>A decode step hands out ~130 ranges of tens of microseconds each; an executor's futures and
 * park/unpark per range cost a noticeable share of that. So the caller runs range 0 itself, and the
 * workers spin briefly for the next range before they park.
 */
public final class CpuThreads implements AutoCloseable {
    /** How long an idle worker polls before parking: longer than the gaps between ranges within a step. */
    private static final long SPIN_NANOS = 200_000;

    private final int threads;
    private final Thread[] workers;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile int generation;
    private volatile boolean closed;
    // Published to the workers by the volatile write of generation.
    private IntBinaryOperator body;
    private int n;
    private int parts;
    private Thread caller;
    private volatile Throwable failure;

    public CpuThreads(int threads) {
        this.threads = Math.max(1, threads);
        this.workers = new Thread[this.threads - 1];
        for (int i = 0; i < workers.length; i++) {
            int part = i + 1;
            workers[i] = new Thread(() -> work(part), "kvass-cpu-forward-" + part);
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code body(start, end)} over {@code [0, n)} split into contiguous ranges, and waits. */
    public synchronized void forRange(int n, IntBinaryOperator body) {
        int parts = Math.min(threads, n);
        if (parts <= 1) {
            body.applyAsInt(0, n);
            return;
        }
        this.body = body;
        this.n = n;
        this.parts = parts;
        this.caller = Thread.currentThread();
        this.failure = null;
        // NOTE: every worker acknowledges every generation, idle ones too, so none can lag into the next.
        pending.set(workers.length);
        generation++;
        for (int i = 0; i < workers.length; i++) {
            LockSupport.unpark(workers[i]);
        }
        try {
            run(0);
        } finally {
            awaitWorkers();
            this.body = null;
        }
        switch (failure) {
            case null -> { }
            case RuntimeException e -> throw e;
            case Error e -> throw e;
            case Throwable t -> throw new IllegalStateException(t);
        }
    }

    /** {@code out = x @ W^T} for {@code nTok} rows of x, rows of W split across threads. */
    public void multiply(Matrix w, float[] x, int nTok, float[] out) {
        forRange(w.rows(), (r0, r1) -> {
            w.multiply(x, nTok, out, r0, r1);
            return 0;
        });
    }

    /**
     * Several matrices over the same input ({@code q/k/v}, {@code gate/up}) as one split of their
     * stacked rows: one hand-off to the threads instead of one per matrix.
     */
    public void multiplyAll(Matrix[] ws, float[] x, int nTok, float[][] outs) {
        int total = 0;
        for (Matrix w : ws) {
            total += w.rows();
        }
        forRange(total, (r0, r1) -> {
            int base = 0;
            for (int i = 0; i < ws.length; i++) {
                int lo = Math.max(r0, base), hi = Math.min(r1, base + ws[i].rows());
                if (lo < hi) {
                    ws[i].multiply(x, nTok, outs[i], lo - base, hi - base);
                }
                base += ws[i].rows();
            }
            return 0;
        });
    }

    private void run(int part) {
        int start = (int) ((long) n * part / parts);
        int end = (int) ((long) n * (part + 1) / parts);
        body.applyAsInt(start, end);
    }

    private void awaitWorkers() {
        long deadline = System.nanoTime() + SPIN_NANOS;
        while (pending.get() != 0) {
            if (System.nanoTime() < deadline) {
                Thread.onSpinWait();
            } else {
                LockSupport.park(this); // the last worker unparks the caller
            }
        }
    }

    private void work(int part) {
        int seen = 0;
        while (true) {
            long deadline = System.nanoTime() + SPIN_NANOS;
            int g;
            while ((g = generation) == seen && !closed) {
                if (System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this); // forRange unparks after bumping generation
                }
            }
            if (closed) {
                return;
            }
            seen = g;
            if (part < parts) {
                try {
                    run(part);
                } catch (Throwable t) {
                    failure = t;
                }
            }
            if (pending.decrementAndGet() == 0) {
                LockSupport.unpark(caller);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
