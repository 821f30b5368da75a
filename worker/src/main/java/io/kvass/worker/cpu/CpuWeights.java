package io.kvass.worker.cpu;

import io.kvass.worker.model.LlamaTensors;
import io.kvass.worker.model.Tensor;
import java.lang.foreign.Arena;
import java.util.List;

/** The CPU's view of a model's weights: matrices over the mmapped tensors, small vectors on the heap. */
record CpuWeights(Matrix embedding, List<Layer> layers, float[] finalNorm, Matrix lmHead) {

    record Layer(float[] attnNorm, Matrix q, Matrix k, Matrix v, Matrix o, float[] qBias, float[] kBias, float[] vBias,
                 float[] ffnNorm, Matrix gate, Matrix up, Matrix down) {

        long matrixBytes() {
            return q.byteSize() + k.byteSize() + v.byteSize() + o.byteSize() + gate.byteSize() + up.byteSize()
                    + down.byteSize();
        }
    }

    static CpuWeights of(LlamaTensors t, Arena arena) {
        List<Layer> layers = t.layers().stream().map(l -> new Layer(
                Matrix.vector(l.attnNorm()),
                Matrix.of(l.q(), arena), Matrix.of(l.k(), arena), Matrix.of(l.v(), arena), Matrix.of(l.o(), arena),
                l.qBias().map(Matrix::vector).orElse(null),
                l.kBias().map(Matrix::vector).orElse(null),
                l.vBias().map(Matrix::vector).orElse(null),
                Matrix.vector(l.ffnNorm()),
                Matrix.of(l.gate(), arena), Matrix.of(l.up(), arena), Matrix.of(l.down(), arena))).toList();
        Tensor head = t.lmHead();
        return new CpuWeights(Matrix.of(t.embedding(), arena), layers, Matrix.vector(t.finalNorm()), Matrix.of(head, arena));
    }

    /** Bytes a decode step must stream: every layer matrix and the LM head (the embedding is only gathered). */
    long decodeBytes() {
        return layers.stream().mapToLong(Layer::matrixBytes).sum() + lmHead.byteSize();
    }
}
