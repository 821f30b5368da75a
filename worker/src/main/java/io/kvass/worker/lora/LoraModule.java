package io.kvass.worker.lora;

/**
 * One adapted projection in fp32: {@code y += scale * B (A x)}. B is kept transposed so that both
 * halves read contiguous rows: the shrink is {@code rank} dot products with rows of A, the expand
 * {@code rank} axpys of rows of B^T.
 *
 * @param a  {@code [rank, inDim]}, PEFT's {@code lora_A.weight}
 * @param bT {@code [rank, outDim]}, PEFT's {@code lora_B.weight} ({@code [outDim, rank]}) transposed
 */
public record LoraModule(int layer, LoraTarget target, int rank, int inDim, int outDim, float scale, float[] a,
                         float[] bT) {

    public LoraModule {
        if (a.length != rank * inDim || bT.length != rank * outDim) {
            throw new IllegalArgumentException("LoRA module " + target + " of layer " + layer + ": arrays do not match rank "
                    + rank + ", in " + inDim + ", out " + outDim);
        }
    }

    public long byteSize() {
        return (long) (a.length + bT.length) * Float.BYTES;
    }
}
