package io.kvass.worker.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CAP_SPLITK_SUPPORT;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_SPLITK_NUM;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_STAGES_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_TILE_ID;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSA;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSB;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_REDUCTION_SCHEME_INPLACE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasLtCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmul;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoCapGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoCheck;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoConfigGetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoConfigSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoGetHeuristic;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutDestroy;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulAlgo_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * cuBLASLt through JavaCPP for the product {@link CuBlas#linear} makes, on the same stream and the same
 * workspace: a {@link Plan} (descriptors) per product shape, the algorithms cuBLASLt's heuristic offers
 * for it (with split-K variants), and the product under one of them. {@link GemmTuner} chooses.
 */
final class CuBlasLt implements AutoCloseable {
    /** Split-K variants are made of the first this many heuristic algorithms that allow them. */
    private static final int SPLIT_K_BASES = 8;
    private static final int[] SPLITS = {2, 4};

    private final cublasLtContext handle = new cublasLtContext();
    private final CUstream_st stream;
    private final DeviceBuffer workspace;
    private final Pointer workspacePointer;
    private final FloatPointer one = new FloatPointer(1f);
    private final FloatPointer zero = new FloatPointer(0f);
    private final List<Plan> plans = new ArrayList<>();

    /** One algorithm, copied out of cuBLASLt's result array, and what it is (for logs). */
    record Algo(cublasLtMatmulAlgo_t algo, String label) {
    }

    /**
     * One product's descriptors. Column-major, as cublasGemmEx sees it: {@code D[out, n] = op(A) B (+ C)},
     * A = w stored {@code [in, out]} read transposed, B = x {@code [in, n]}, C = D = y {@code [out, n]}.
     */
    static final class Plan {
        final CuBlas.Product product;
        final int alignment;
        private final cublasLtMatmulDescOpaque_t desc;
        private final cublasLtMatrixLayoutOpaque_t a;
        private final cublasLtMatrixLayoutOpaque_t b;
        private final cublasLtMatrixLayoutOpaque_t c;

        private Plan(CuBlas.Product product, int alignment) {
            this.product = product;
            this.alignment = alignment;
            PointerPointer<?> pp = new PointerPointer<>(1);
            check(cublasLtMatmulDescCreate(pp, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
            this.desc = new cublasLtMatmulDescOpaque_t(pp.get(0));
            check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, new IntPointer(new int[] {CUBLAS_OP_T}),
                    4), "TRANSA");
            check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, new IntPointer(new int[] {CUBLAS_OP_N}),
                    4), "TRANSB");
            this.a = layout(CUDA_R_16BF, product.in(), product.out(), product.in());
            this.b = layout(CUDA_R_16BF, product.in(), product.n(), product.in());
            this.c = layout(product.mode() == CuBlas.Out.BF16 ? CUDA_R_16BF : CUDA_R_32F, product.out(), product.n(),
                    product.out());
        }

        private static cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
            PointerPointer<?> pp = new PointerPointer<>(1);
            check(cublasLtMatrixLayoutCreate(pp, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
            return new cublasLtMatrixLayoutOpaque_t(pp.get(0));
        }

        private void destroy() {
            cublasLtMatrixLayoutDestroy(a);
            cublasLtMatrixLayoutDestroy(b);
            cublasLtMatrixLayoutDestroy(c);
            cublasLtMatmulDescDestroy(desc);
        }
    }

    CuBlasLt(CudaDevice device, DeviceBuffer workspace) {
        this.workspace = workspace;
        this.workspacePointer = CuBlas.raw(workspace.address());
        this.stream = new CUstream_st(CuBlas.raw(device.stream().handle()));
        check(cublasLtCreate(handle), "cublasLtCreate");
    }

    /** Descriptors for {@code product} whose pointers are all aligned to {@code alignment} bytes (a power of two). */
    Plan plan(CuBlas.Product product, int alignment) {
        Plan p = new Plan(product, alignment);
        plans.add(p);
        return p;
    }

    /**
     * Up to {@code max} algorithms of cuBLASLt's heuristic for {@code plan} (those it says work), then
     * split-K variants of the first few that allow it and have no split yet. Split parts are summed in
     * fp32 (or, for fp32 outputs, in the output itself), never in bf16.
     */
    List<Algo> algorithms(Plan plan, int max) {
        cublasLtMatmulPreferenceOpaque_t pref = preference(plan);
        try {
            cublasLtMatmulHeuristicResult_t results = new cublasLtMatmulHeuristicResult_t(max);
            IntPointer returned = new IntPointer(1);
            int status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, max,
                    results, returned);
            List<Algo> algos = new ArrayList<>();
            if (status != 0) {
                return algos;   // no algorithm for this shape: cublasGemmEx it is
            }
            for (int k = 0; k < returned.get(); k++) {
                cublasLtMatmulHeuristicResult_t r = results.getPointer(k);
                if (r.state() == 0 && r.workspaceSize() <= workspace.bytes()) {
                    cublasLtMatmulAlgo_t copy = copy(r.algo());
                    algos.add(new Algo(copy, label(copy)));
                }
            }
            int bases = Math.min(SPLIT_K_BASES, algos.size());
            for (int k = 0; k < bases; k++) {
                algos.addAll(splitK(plan, algos.get(k).algo()));
            }
            return algos;
        } finally {
            cublasLtMatmulPreferenceDestroy(pref);
        }
    }

    private cublasLtMatmulPreferenceOpaque_t preference(Plan plan) {
        PointerPointer<?> pp = new PointerPointer<>(1);
        check(cublasLtMatmulPreferenceCreate(pp), "cublasLtMatmulPreferenceCreate");
        cublasLtMatmulPreferenceOpaque_t pref = new cublasLtMatmulPreferenceOpaque_t(pp.get(0));
        check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                new LongPointer(new long[] {workspace.bytes()}), 8), "MAX_WORKSPACE_BYTES");
        check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                new IntPointer(new int[] {reductions(plan.product.mode())}), 4), "REDUCTION_SCHEME_MASK");
        IntPointer alignment = new IntPointer(new int[] {plan.alignment});
        for (int attr : new int[] {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
            check(cublasLtMatmulPreferenceSetAttribute(pref, attr, alignment, 4), "MIN_ALIGNMENT");
        }
        return pref;
    }

    /** Split-K reductions that keep fp32 partial sums: in a bf16 output, only the workspace's fp32 ones. */
    private static int reductions(CuBlas.Out mode) {
        return mode == CuBlas.Out.BF16 ? CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
                : CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_INPLACE
                        | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    }

    /** {@code base} with K split in 2 and 4 (fp32 partials in the workspace), where cuBLASLt accepts it. */
    private List<Algo> splitK(Plan plan, cublasLtMatmulAlgo_t base) {
        List<Algo> out = new ArrayList<>();
        if (capability(base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT) != 1 || config(base, CUBLASLT_ALGO_CONFIG_SPLITK_NUM) > 1
                || (capability(base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK) & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE) == 0) {
            return out;
        }
        cublasLtMatmulHeuristicResult_t check = new cublasLtMatmulHeuristicResult_t();
        for (int split : SPLITS) {
            cublasLtMatmulAlgo_t algo = copy(base);
            if (setConfig(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, split) != 0
                    || setConfig(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE) != 0) {
                continue;
            }
            if (cublasLtMatmulAlgoCheck(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, algo, check) == 0
                    && check.workspaceSize() <= workspace.bytes()) {
                out.add(new Algo(algo, label(algo)));
            }
        }
        return out;
    }

    /** {@code y (+)= x w^T} under {@code algo}; the cuBLAS status (0: launched). */
    int matmul(Plan plan, cublasLtMatmulAlgo_t algo, long w, long x, long y) {
        FloatPointer beta = plan.product.mode() == CuBlas.Out.F32_ADD ? one : zero;
        Pointer out = CuBlas.raw(y);
        return cublasLtMatmul(handle, plan.desc, one, CuBlas.raw(w), plan.a, CuBlas.raw(x), plan.b, beta, out, plan.c,
                out, plan.c, algo, workspacePointer, workspace.bytes(), stream);
    }

    /**
     * A copy of an algorithm (opaque {@code uint64_t data[8]}) that outlives the result array it came from.
     * NOTE: JavaCPP's {@code algo()} of a result is a view into that array, not a copy.
     */
    private static cublasLtMatmulAlgo_t copy(cublasLtMatmulAlgo_t src) {
        cublasLtMatmulAlgo_t dst = new cublasLtMatmulAlgo_t();
        for (int i = 0; i < 8; i++) {
            dst.data(i, src.data(i));
        }
        return dst;
    }

    private static String label(cublasLtMatmulAlgo_t algo) {
        return "lt id " + config(algo, CUBLASLT_ALGO_CONFIG_ID) + " tile " + config(algo, CUBLASLT_ALGO_CONFIG_TILE_ID)
                + " stages " + config(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID) + " cluster "
                + config(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID) + " splitK "
                + config(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM) + " reduction "
                + config(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME);
    }

    /**
     * A configuration attribute (16 or 32 bits wide), or -1 when cuBLASLt does not say. A first call with no
     * buffer asks for its size.
     */
    private static int config(cublasLtMatmulAlgo_t algo, int attribute) {
        SizeTPointer size = new SizeTPointer(1);
        if (cublasLtMatmulAlgoConfigGetAttribute(algo, attribute, null, 0, size) != 0 || size.get() < 1 || size.get() > 8) {
            return -1;
        }
        LongPointer value = new LongPointer(new long[] {0});
        SizeTPointer written = new SizeTPointer(1);
        if (cublasLtMatmulAlgoConfigGetAttribute(algo, attribute, value, size.get(), written) != 0) {
            return -1;
        }
        return (int) (value.get() & (size.get() >= 4 ? 0xFFFFFFFFL : 0xFFFFL));
    }

    private static int setConfig(cublasLtMatmulAlgo_t algo, int attribute, int value) {
        return cublasLtMatmulAlgoConfigSetAttribute(algo, attribute, new IntPointer(new int[] {value}), 4);
    }

    /** A 32-bit capability attribute, or -1 when cuBLASLt does not say. */
    private static int capability(cublasLtMatmulAlgo_t algo, int attribute) {
        IntPointer value = new IntPointer(1);
        SizeTPointer written = new SizeTPointer(1);
        return cublasLtMatmulAlgoCapGetAttribute(algo, attribute, value, 4, written) == 0 ? value.get() : -1;
    }

    private static void check(int status, String what) {
        if (status != 0) {
            throw new IllegalStateException(what + " failed with cuBLAS status " + status);
        }
    }

    @Override
    public void close() {
        for (Plan p : plans) {
            p.destroy();
        }
        plans.clear();
        cublasLtDestroy(handle);
        one.close();
        zero.close();
    }
}
