package io.kvass.worker.cpu;

import io.kvass.worker.model.LlamaTensors;
import io.kvass.worker.model.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/** The CPU's view of a model's weights: matrices in the chosen {@link CpuWeightMemory} and {@link CpuWeightFormat}, small vectors on the heap. */
record CpuWeights(Matrix embedding, List<Layer> layers, float[] finalNorm, Matrix lmHead) {

    record Layer(float[] attnNorm, Matrix q, Matrix k, Matrix v, Matrix o, float[] qBias, float[] kBias, float[] vBias,
                 float[] ffnNorm, Matrix gate, Matrix up, Matrix down) {

        long matrixBytes() {
            return q.byteSize() + k.byteSize() + v.byteSize() + o.byteSize() + gate.byteSize() + up.byteSize()
                    + down.byteSize();
        }
    }

    static CpuWeights of(LlamaTensors t, CpuWeightMemory memory, CpuWeightFormat format, Arena arena) {
        Function<Tensor, Matrix> matrix = tensor -> Matrix.of(tensor, memory, format, arena);
        List<Layer> layers = t.layers().stream().map(l -> new Layer(
                Matrix.vector(l.attnNorm()),
                matrix.apply(l.q()), matrix.apply(l.k()), matrix.apply(l.v()), matrix.apply(l.o()),
                l.qBias().map(Matrix::vector).orElse(null),
                l.kBias().map(Matrix::vector).orElse(null),
                l.vBias().map(Matrix::vector).orElse(null),
                Matrix.vector(l.ffnNorm()),
                matrix.apply(l.gate()), matrix.apply(l.up()), matrix.apply(l.down())))
                .toList();
        Matrix embedding = matrix.apply(t.embedding());
        // Tied embeddings are one tensor: one matrix, so a copy is made (and streamed) once.
        Matrix head = t.lmHead() == t.embedding() ? embedding : matrix.apply(t.lmHead());
        return new CpuWeights(embedding, layers, Matrix.vector(t.finalNorm()), head);
    }

    /**
     * What the chosen format became, for the log: with {@code packed}, how many matrices packed (the others
     * stayed bf16: no 512-bit vectors, too narrow, or too many exponents) and the bytes a step streams.
     */
    String formatSummary(CpuWeightFormat format) {
        String gb = String.format(java.util.Locale.ROOT, "%.3f GB per decode step", decodeBytes() / 1e9);
        if (format != CpuWeightFormat.PACKED) {
            return "cpu-weight-format bf16: " + gb;
        }
        List<Matrix> all = decodeMatrices();
        long packed = all.stream().filter(m -> m instanceof PackedBf16Matrix).count();
        String why = PackedBf16Matrix.SUPPORTED ? "" : " (no 512-bit vectors here, so bf16)";
        return "cpu-weight-format packed: " + packed + " of " + all.size() + " decode matrices packed" + why + ", " + gb;
    }

    /** Bytes a decode step must stream: every layer matrix and the LM head (the embedding is only gathered). */
    long decodeBytes() {
        return layers.stream().mapToLong(Layer::matrixBytes).sum() + lmHead.byteSize();
    }

    /** The matrices a decode step multiplies, in the order it multiplies them. */
    List<Matrix> decodeMatrices() {
        List<Matrix> all = new ArrayList<>();
        for (Layer l : layers) {
            all.addAll(List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()));
        }
        all.add(lmHead);
        return all;
    }
}
