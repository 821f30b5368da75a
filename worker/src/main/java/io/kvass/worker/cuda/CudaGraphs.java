package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;

/**
 * Decode steps captured as CUDA graphs, one per (padded batch size, context bucket): a step's
 * hundreds of launches replay as one. Captured kernels read their inputs from fixed device
 * addresses, so a step only uploads its inputs and launches. A shape seen for the first time runs
 * eagerly and is captured for the next time (capture records, it does not execute).
 */
final class CudaGraphs implements AutoCloseable {
    /** {@code lora}: the graph runs the LoRA kernels (only steps with adapted tokens pay for them). */
    record Key(int batch, int contextBucket, boolean lora) {
    }

    private final CudaDevice device;
    private final Map<Key, CUgraphExec> graphs = new HashMap<>();

    CudaGraphs(CudaDevice device) {
        this.device = device;
    }

    /** Replays the graph for {@code key}; without one, runs {@code step} eagerly and captures it. */
    void run(Key key, Runnable step) {
        CUgraphExec exec = graphs.get(key);
        if (exec != null) {
            cuGraphLaunch(exec, device.stream());
            return;
        }
        step.run();
        graphs.put(key, capture(step));
    }

    private CUgraphExec capture(Runnable step) {
        CUgraph graph = new CUgraph();
        cuStreamBeginCapture(device.stream(), CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        try {
            step.run();
        } finally {
            cuStreamEndCapture(device.stream(), graph);
        }
        CUgraphExec exec = new CUgraphExec();
        cuGraphInstantiate(exec, graph, 0);
        cuGraphDestroy(graph);
        return exec;
    }

    int size() {
        return graphs.size();
    }

    void clear() {
        device.makeCurrent();
        for (CUgraphExec exec : graphs.values()) {
            cuGraphExecDestroy(exec);
        }
        graphs.clear();
    }

    @Override
    public void close() {
        clear();
    }
}
