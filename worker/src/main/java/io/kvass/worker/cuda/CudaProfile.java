package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUevent;

/** GPU time per phase of an eagerly run step (benchmarks): device events around each launch. */
final class CudaProfile {
    private record Span(String phase, CUevent start, CUevent end) {
    }

    private final CudaDevice device;
    private final List<Span> spans = new ArrayList<>();

    CudaProfile(CudaDevice device) {
        this.device = device;
    }

    void time(String phase, Runnable op) {
        CUevent start = new CUevent(), end = new CUevent();
        cuEventCreate(start, 0);
        cuEventCreate(end, 0);
        cuEventRecord(start, device.stream());
        op.run();
        cuEventRecord(end, device.stream());
        spans.add(new Span(phase, start, end));
    }

    /** Milliseconds per phase, summed over layers, in first-seen order; call after the stream is synchronized. */
    Map<String, Double> millis() {
        Map<String, Double> ms = new LinkedHashMap<>();
        float[] elapsed = new float[1];
        for (Span s : spans) {
            cuEventElapsedTime(elapsed, s.start(), s.end());
            ms.merge(s.phase(), (double) elapsed[0], Double::sum);
            cuEventDestroy(s.start());
            cuEventDestroy(s.end());
        }
        spans.clear();
        return ms;
    }
}
