// Tensor-core building blocks (sm_80+): ldmatrix, mma.sync m16n8k16 bf16, cp.async.
#pragma once
#include "common.cuh"

// A CUtensorMap (cuTensorMapEncodeTiled's 128 bytes, CudaKernels.encodeTensorMap), passed by value.
struct __align__(64) TmaMap {
  unsigned long long v[16];
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}

// d += a b, a 16x16 (row-major), b 16x8 (col-major), bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}


__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// One online-softmax step (log2 domain) for row half rr (rows quad_row + 8 rr) of a thread's m16n8
// accumulators: mx is the thread's max over its scores of the tile, reduced here over the quad; the
// scores become exp2(s - max), the running max and sum and the output accumulators are rescaled. A row
// with no visible key yet (max still -inf) keeps it: exp2(-inf) = 0 removes the tile's entries.
template <int NT, int DT>
__device__ __forceinline__ void online_softmax_step(float (&s)[NT][4], float (&o)[DT][4], float& row_max,
                                                    float& row_sum, int rr, float mx) {
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(row_max, mx);
  const float base = m_new == -CUDART_INF_F ? 0.f : m_new;
  const float alpha = exp2f(row_max - base);
  row_max = m_new;
  float sum = 0.f;
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const float p = exp2f(s[nt][2 * rr + e] - base);
      s[nt][2 * rr + e] = p;
      sum += p;
    }
  }
  row_sum = row_sum * alpha + sum;
  // NOTE: once the running maxima settle, alpha is exactly 1 for every row of the warp and the rescale
  // would multiply by 1: skipping it changes no bit and saves 2 DT multiplies per row half and tile.
  if (__any_sync(0xffffffffu, alpha != 1.f)) {
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
      o[dt][2 * rr] *= alpha;
      o[dt][2 * rr + 1] *= alpha;
    }
  }
}

// mbarriers that TMA and bulk copies complete on (sm_90; on older GPUs these compile to nothing, and the
// kernels that use them take other paths there).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define KVASS_TMA 1
#else
#define KVASS_TMA 0
#endif

__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
#if KVASS_TMA
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#endif
}
// After a thread's mbar_init calls, before other threads or the copy engine use the barriers.
__device__ __forceinline__ void mbar_init_fence() {
#if KVASS_TMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
#if KVASS_TMA
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, int parity) {
#if KVASS_TMA
  uint32_t done = 0;
  while (!done) {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(smem_addr(bar)), "r"(parity)
                 : "memory");
  }
#endif
}
