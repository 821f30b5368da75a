package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.kvass.worker.model.DType;
import io.kvass.worker.model.LlamaTensors;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import jcuda.Pointer;

/**
 * The model on the GPU. Matrices are bf16 (f32 and f16 checkpoints are rounded on upload), with
 * q/k/v fused into one {@code [qDim + 2 kvDim, hidden]} matrix and gate/up into one
 * {@code [2 ffn, hidden]} matrix so each takes one GEMM; norm weights, biases and the RoPE
 * frequencies stay fp32. All addresses are raw device addresses.
 */
record CudaWeights(long embedding, List<Layer> layers, long finalNorm, long lmHead, long invFreq, long bytes) {

    /** One decoder layer; {@code qkvBias} is 0 for models without q/k/v biases. */
    record Layer(long attnNorm, long qkv, long qkvBias, long o, long ffnNorm, long gateUp, long down) {
    }

    /** Bytes of GPU memory the weights of {@code c} take. */
    static long bytesFor(ModelConfig c, boolean tiedLmHead) {
        long h = c.hiddenSize(), qkv = c.qDim() + 2L * c.kvDim(), ffn = c.intermediateSize();
        long perLayer = 2 * (qkv * h + h * c.qDim() + 2 * ffn * h + h * ffn) + 4 * (2 * h + (c.qkvBias() ? qkv : 0));
        return 2 * c.vocabSize() * h * (tiedLmHead ? 1 : 2) + 4 * h + 4L * (c.headDim() / 2) + c.numLayers() * perLayer;
    }

    /** Uploads a checkpoint's tensors; fails with the sizes when they do not fit in free memory. */
    static CudaWeights upload(CudaDevice device, ModelConfig c, LlamaTensors t) {
        boolean tied = t.lmHead() == t.embedding();
        requireFits(device, bytesFor(c, tied));
        Uploader up = new Uploader(device);
        long h = c.hiddenSize(), ffn = c.intermediateSize(), qkvRows = c.qDim() + 2L * c.kvDim();
        long embedding = up.matrix(t.embedding(), "embedding");
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) {
            LlamaTensors.Layer l = t.layers().get(i);
            String p = "layer " + i + " ";
            DeviceBuffer qkv = device.allocate(2 * qkvRows * h, p + "qkv");
            up.bf16(l.q(), qkv, 0);
            up.bf16(l.k(), qkv, 2L * c.qDim() * h);
            up.bf16(l.v(), qkv, 2L * (c.qDim() + c.kvDim()) * h);
            long bias = 0;
            if (l.qBias().isPresent()) {
                DeviceBuffer b = device.allocate(4 * qkvRows, p + "qkv bias");
                up.f32(l.qBias().get(), b, 0);
                up.f32(l.kBias().orElseThrow(), b, 4L * c.qDim());
                up.f32(l.vBias().orElseThrow(), b, 4L * (c.qDim() + c.kvDim()));
                bias = b.address();
            }
            DeviceBuffer gateUp = device.allocate(2 * 2 * ffn * h, p + "gate/up");
            up.bf16(l.gate(), gateUp, 0);
            up.bf16(l.up(), gateUp, 2 * ffn * h);
            layers.add(new Layer(up.vector(l.attnNorm(), p + "norm"), qkv.address(), bias, up.matrix(l.o(), p + "o"),
                    up.vector(l.ffnNorm(), p + "ffn norm"), gateUp.address(), up.matrix(l.down(), p + "down")));
        }
        long finalNorm = up.vector(t.finalNorm(), "final norm");
        long lmHead = tied ? embedding : up.matrix(t.lmHead(), "lm head");
        long invFreq = invFreq(device, c);
        cuCtxSynchronize();
        return new CudaWeights(embedding, List.copyOf(layers), finalNorm, lmHead, invFreq, bytesFor(c, tied));
    }

    /**
     * Random weights of {@code c}'s shapes, generated on the GPU (benchmarks: speed does not depend on
     * the values). Matrices uniform in +-{@code 1/sqrt(in)}, norms near 1, untied LM head.
     */
    static CudaWeights random(CudaDevice device, CudaKernels kernels, ModelConfig c, long seed) {
        requireFits(device, bytesFor(c, c.tiedEmbeddings()));
        long h = c.hiddenSize(), ffn = c.intermediateSize(), qkvRows = c.qDim() + 2L * c.kvDim();
        long[] counter = {seed};
        java.util.function.BiFunction<long[], String, Long> matrix = (shape, what) -> {
            long n = shape[0] * shape[1];
            DeviceBuffer b = device.allocate(2 * n, what);
            kernels.fillUniformBf16(b.address(), n, counter[0]++, 0f, (float) (1 / Math.sqrt(shape[1])));
            return b.address();
        };
        java.util.function.BiFunction<Long, String, Long> vector = (n, what) -> {
            DeviceBuffer b = device.allocate(4 * n, what);
            kernels.fillUniformF32(b.address(), n, counter[0]++, 1f, 0.1f);
            return b.address();
        };
        long embedding = matrix.apply(new long[] {c.vocabSize(), h}, "embedding");
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) {
            long bias = c.qkvBias() ? vector.apply(qkvRows, "bias") : 0;
            layers.add(new Layer(vector.apply(h, "norm"), matrix.apply(new long[] {qkvRows, h}, "qkv"), bias,
                    matrix.apply(new long[] {h, c.qDim()}, "o"), vector.apply(h, "ffn norm"),
                    matrix.apply(new long[] {2 * ffn, h}, "gate/up"), matrix.apply(new long[] {h, ffn}, "down")));
        }
        long finalNorm = vector.apply(h, "final norm");
        long lmHead = c.tiedEmbeddings() ? embedding : matrix.apply(new long[] {c.vocabSize(), h}, "lm head");
        long invFreq = invFreq(device, c);
        cuCtxSynchronize();
        return new CudaWeights(embedding, List.copyOf(layers), finalNorm, lmHead, invFreq,
                bytesFor(c, c.tiedEmbeddings()));
    }

    private static long invFreq(CudaDevice device, ModelConfig c) {
        float[] inv = c.rope().inverseFrequencies(c.headDim());
        DeviceBuffer b = device.allocate(4L * inv.length, "rope frequencies");
        cuMemcpyHtoD(b.pointer(), Pointer.to(inv), 4L * inv.length);
        return b.address();
    }

    private static void requireFits(CudaDevice device, long bytes) {
        long[] info = device.memoryInfo();
        if (bytes > info[0]) {
            throw new ModelLoadException(String.format("the model's weights need %.2f GiB of GPU memory in bf16, but "
                    + "GPU %s has %.2f GiB free of %.2f GiB", CudaDevice.gib(bytes), device.name, CudaDevice.gib(info[0]),
                    CudaDevice.gib(info[1])));
        }
    }

    /** Host-to-device copies through a staging buffer, converting to the device dtype on the way. */
    private static final class Uploader {
        private static final int STAGE_BYTES = 32 << 20;
        private final CudaDevice device;
        private final ByteBuffer stage = ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);

        Uploader(CudaDevice device) {
            this.device = device;
        }

        long matrix(Tensor t, String what) {
            DeviceBuffer b = device.allocate(2 * t.numel(), what);
            bf16(t, b, 0);
            return b.address();
        }

        long vector(Tensor t, String what) {
            DeviceBuffer b = device.allocate(4 * t.numel(), what);
            f32(t, b, 0);
            return b.address();
        }

        /** Writes {@code t} as bf16 at {@code offset} bytes into {@code dst}. */
        void bf16(Tensor t, DeviceBuffer dst, long offset) {
            convert(t, dst, offset, 2);
        }

        void f32(Tensor t, DeviceBuffer dst, long offset) {
            convert(t, dst, offset, 4);
        }

        private void convert(Tensor t, DeviceBuffer dst, long offset, int outBytes) {
            long n = t.numel();
            int perChunk = STAGE_BYTES / Math.max(outBytes, t.dtype().bytes());
            for (long start = 0; start < n; start += perChunk) {
                int count = (int) Math.min(perChunk, n - start);
                ByteBuffer out = stage.clear().slice(0, count * outBytes).order(ByteOrder.LITTLE_ENDIAN);
                MemorySegment src = t.data().asSlice(start * t.dtype().bytes(), (long) count * t.dtype().bytes());
                if (outBytes == 2 && t.dtype() == DType.BF16) {
                    MemorySegment.ofBuffer(out).copyFrom(src);
                } else {
                    for (int i = 0; i < count; i++) {
                        float v = read(src, t.dtype(), i);
                        if (outBytes == 2) {
                            out.putShort(2 * i, Bf16.of(v));
                        } else {
                            out.putFloat(4 * i, v);
                        }
                    }
                }
                cuMemcpyHtoD(dst.at(offset + start * outBytes), Pointer.to(out), (long) count * outBytes);
            }
        }

        private static float read(MemorySegment s, DType dtype, int i) {
            return switch (dtype) {
                case F32 -> s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i);
                case BF16 -> Bf16.toFloat(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i));
                case F16 -> Float.float16ToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i));
            };
        }
    }
}
