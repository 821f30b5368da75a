package io.kvass.worker.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntBinaryOperator;

/**
 * The forward pass's own threads (one per core). Work is split into as many contiguous ranges as
 * threads, so each thread streams its own slice of every weight matrix.
 */
public final class CpuThreads implements AutoCloseable {
    private final int threads;
    private final ExecutorService pool;

    public CpuThreads(int threads) {
        this.threads = Math.max(1, threads);
        this.pool = Executors.newFixedThreadPool(this.threads, r -> {
            Thread t = new Thread(r, "kvass-cpu-forward");
            t.setDaemon(true);
            return t;
        });
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code body(start, end)} over {@code [0, n)} split into contiguous ranges, and waits. */
    public void forRange(int n, IntBinaryOperator body) {
        int parts = Math.min(threads, n);
        if (parts <= 1) {
            body.applyAsInt(0, n);
            return;
        }
        List<Callable<Integer>> tasks = new ArrayList<>(parts);
        for (int p = 0; p < parts; p++) {
            int start = (int) ((long) n * p / parts);
            int end = (int) ((long) n * (p + 1) / parts);
            tasks.add(() -> body.applyAsInt(start, end));
        }
        try {
            for (Future<Integer> f : pool.invokeAll(tasks)) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("forward pass interrupted", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
        }
    }

    /** {@code out = x @ W^T} for {@code nTok} rows of x, rows of W split across threads. */
    public void multiply(Matrix w, float[] x, int nTok, float[] out) {
        forRange(w.rows(), (r0, r1) -> {
            w.multiply(x, nTok, out, r0, r1);
            return 0;
        });
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }
}
