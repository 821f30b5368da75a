package io.kvass.worker.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A device allocation: JCuda's pointer (for copies) and its raw address (for kernel arguments and
 * cuBLAS through JavaCPP). Freed by the {@link CudaDevice} that made it.
 */
record DeviceBuffer(CUdeviceptr pointer, long address, long bytes) {

    /** A JCuda pointer {@code offset} bytes in, for copies. */
    CUdeviceptr at(long offset) {
        if (offset < 0 || offset > bytes) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside a buffer of " + bytes + " bytes");
        }
        return offset == 0 ? pointer : pointer.withByteOffset(offset);
    }

    /** The raw address {@code offset} bytes in. */
    long address(long offset) {
        if (offset < 0 || offset > bytes) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside a buffer of " + bytes + " bytes");
        }
        return address + offset;
    }
}
