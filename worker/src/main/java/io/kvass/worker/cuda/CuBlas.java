package io.kvass.worker.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cublas.cublasSetStream_v2;
import static org.bytedeco.cuda.global.cublas.cublasSetWorkspace_v2;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * cuBLAS through JavaCPP on the device's stream and a workspace of our own (CUDA graph capture
 * needs one). Only the product a Linear layer needs: {@code Y[n, out] = X[n, in] W[out, in]^T},
 * bf16 operands, fp32 accumulation, Y bf16 or fp32 (optionally added to: the residual stream).
 */
final class CuBlas implements AutoCloseable {
    static final long WORKSPACE_BYTES = 64L << 20;

    private final cublasContext handle = new cublasContext();
    private final FloatPointer one = new FloatPointer(1f);
    private final FloatPointer zero = new FloatPointer(0f);
    /** Scalars of {@link #gemm}: cuBLAS reads host-memory scalars before the call returns, so one each suffices. */
    private final FloatPointer alpha = new FloatPointer(1f);
    private final FloatPointer beta = new FloatPointer(0f);

    /** Output of a Linear product. */
    enum Out { BF16, F32, F32_ADD }

    /** One Linear product's shape: {@code y[n, out] (+)= x[n, in] w[out, in]^T} with output {@code mode}. */
    record Product(int n, int out, int in, Out mode) {
        /** Bytes of y. */
        long outputBytes() {
            return (long) n * out * (mode == Out.BF16 ? 2 : 4);
        }
    }

    /** The device workspace cuBLAS uses; cuBLASLt calls on the same stream share it ({@link CuBlasLt}). */
    final DeviceBuffer workspace;

    CuBlas(CudaDevice device, DeviceBuffer workspace) {
        this.workspace = workspace;
        device.makeCurrent();
        // cuBLAS works in the CUDA runtime's current device, whose primary context JCuda retained.
        check(org.bytedeco.cuda.global.cudart.cudaSetDevice(device.ordinal), "cudaSetDevice");
        check(cublasCreate_v2(handle), "cublasCreate");
        check(cublasSetStream_v2(handle, new CUstream_st(raw(device.stream().handle()))), "cublasSetStream");
        check(cublasSetWorkspace_v2(handle, raw(workspace.address()), workspace.bytes()), "cublasSetWorkspace");
    }

    /** A JavaCPP view of a raw device address (JavaCPP never frees it). NOTE: the parameter must not be
     *  called {@code address}: inside the subclass that name is Pointer's own field. */
    static Pointer raw(long addr) {
        return new Pointer() {
            {
                address = addr;
            }
        };
    }

    /**
     * {@code y[n, out] (+)= x[n, in] w[out, in]^T}. Column-major, that is {@code y^T = w x^T}: w read
     * transposed (its rows are the contraction), x as is.
     */
    void linear(long w, long x, long y, int n, int out, int in, Out mode) {
        int yType = mode == Out.BF16 ? CUDA_R_16BF : CUDA_R_32F;
        check(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, one, raw(w), CUDA_R_16BF, in, raw(x),
                CUDA_R_16BF, in, mode == Out.F32_ADD ? one : zero, raw(y), yType, out, CUBLAS_COMPUTE_32F,
                CUBLAS_GEMM_DEFAULT), "cublasGemmEx " + n + "x" + out + "x" + in);
    }

    /**
     * The general product, column-major: {@code C[m, n] = alpha A^T B + beta C} with A {@code [k, m]} (ld
     * {@code lda}), B {@code [k, n]} (ld {@code ldb}), bf16 operands, C bf16 or fp32 (ld {@code ldc}). In
     * kvass's row-major terms: {@code y[n, m] = alpha x[n, k] w[m, k]^T + beta y} with row strides.
     */
    void gemm(long w, int ldw, long x, int ldx, long y, int ldy, boolean yBf16, int m, int n, int k, float alpha,
              float beta) {
        this.alpha.put(alpha);
        this.beta.put(beta);
        check(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, this.alpha, raw(w), CUDA_R_16BF, ldw, raw(x),
                CUDA_R_16BF, ldx, this.beta, raw(y), yBf16 ? CUDA_R_16BF : CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                CUBLAS_GEMM_DEFAULT), "cublasGemmEx " + n + "x" + m + "x" + k);
    }

    private static void check(int status, String what) {
        if (status != 0) {
            throw new IllegalStateException(what + " failed with cuBLAS status " + status);
        }
    }

    @Override
    public void close() {
        cublasDestroy_v2(handle);
        one.close();
        zero.close();
        alpha.close();
        beta.close();
    }
}
