package io.kvass.worker.cuda;

import io.kvass.worker.model.ModelConfig;

/** The activation buffers of one step, sized for {@code tokens} tokens and {@code logitRows} logit rows. */
final class Scratch {
    final int tokens;
    final int logitRows;
    final long partialRows;
    final long x;            // [tokens, hidden] fp32, the residual stream
    final long xn;           // [tokens, hidden] bf16, normed
    final long qkv;          // [tokens, qDim + 2 kvDim] fp32
    final long q;            // [tokens, qDim] bf16, rotated
    final long attn;         // [tokens, qDim] bf16
    final long gateUp;       // [tokens, 2 ffn] bf16
    final long act;          // [tokens, ffn] bf16
    final long logitsNormed; // [logitRows, hidden] bf16
    final DeviceBuffer logits; // [logitRows, vocab] fp32
    final DeviceBuffer ids;    // [logitRows] int
    final CudaKernels.ArgmaxScratch argmax;
    final long partOut;      // [partialRows, headDim] fp32
    final long partMl;       // [partialRows, 2] fp32
    final long attentionCounters; // [partialRows] ints: split-K arrivals per (token, kv head), 0 between launches
    final CudaKernels.GemmScratch gemm; // null where the decode GEMM cannot run (not sm_90)

    Scratch(CudaDevice d, ModelConfig c, int tokens, int logitRows, long partialRows) {
        this.tokens = tokens;
        this.logitRows = logitRows;
        this.partialRows = partialRows;
        long t = tokens, h = c.hiddenSize(), ffn = c.intermediateSize();
        x = d.allocate(4 * t * h, "activations").address();
        xn = d.allocate(2 * t * h, "activations").address();
        qkv = d.allocate(4 * t * (c.qDim() + 2L * c.kvDim()), "activations").address();
        q = d.allocate(2 * t * c.qDim(), "activations").address();
        attn = d.allocate(2 * t * c.qDim(), "activations").address();
        gateUp = d.allocate(2 * t * 2 * ffn, "activations").address();
        act = d.allocate(2 * t * ffn, "activations").address();
        logitsNormed = d.allocate(2L * logitRows * h, "activations").address();
        logits = d.allocate(4L * logitRows * c.vocabSize(), "logits");
        ids = d.allocate(4L * logitRows, "token ids");
        argmax = CudaKernels.ArgmaxScratch.allocate(d, logitRows);
        partOut = d.allocate(4 * partialRows * c.headDim(), "attention partials").address();
        partMl = d.allocate(8 * partialRows, "attention partials").address();
        DeviceBuffer counters = d.allocate(4 * partialRows, "arrival counters");
        d.zero(counters);
        attentionCounters = counters.address();
        gemm = d.computeCapability == 90 ? CudaKernels.GemmScratch.allocate(d) : null;
    }
}
