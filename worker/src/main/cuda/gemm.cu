// Decode GEMMs on Hopper tensor cores for steps of 9..256 tokens: Y[M, N] = X[M, K] W[N, K]^T, bf16 in,
// fp32 accumulate. At these sizes a step's GEMMs only stream their weights; cuBLAS reads them at 1.9-2.6
// TB/s (Llama-3-8B shape, M = 128, H100).
//  - Stream-K: the grid is one CTA per SM, and CTA c takes the c-th equal share of all (output tile,
//    64-wide k-block) units, tile after tile, so every SM streams the same number of weight bytes. A tile
//    cut by a share boundary is summed by the CTA holding its first k-block (the owner): the CTAs holding
//    the rest store their fp32 partial sums and raise a flag; the owner adds them in CTA order
//    (deterministic) and lowers the flags, so they are 0 between launches (CUDA graphs fit).
//  - A TMA pipeline: thread 0 loads each unit's X and W boxes with the tensor memory accelerator
//    (128-byte swizzled, as wgmma reads them) into a ring of STAGES buffers, each signalled by an
//    mbarrier when its bytes are in; two warpgroups multiply their 64-row slices of X with the stage's W
//    rows (wgmma.m64n128k16, both operands K-major in shared memory), meet at a barrier, and thread 0
//    refills the stage STAGES units ahead. (No separate producer warp: 288 threads are allotted
//    registers as 384, and 128 accumulators a thread then spill.)
//    (A first version loaded with cp.async from the consumer threads: 1.0-1.6 TB/s, the address
//    arithmetic of 3,072 16-byte copies a stage in series with the tensor-core work.)
//  - The epilogue writes straight from the accumulators: bf16, fp32, fp32 added to Y (the residual
//    stream), or act = silu(gate) * up for the fused [gate; up] weight (a tile's first 128 W rows are
//    gate rows, its second 128 the matching up rows, so both values sit in one thread).
// sm_90a only: elsewhere the host never launches it (the body is empty).
#include "mma.cuh"

namespace {
constexpr int GEMM_THREADS = 256;  // two warpgroups
constexpr int GEMM_BK = 64;                    // k per stage: one 128-byte swizzle row of bf16
constexpr int GEMM_SMEM = 200 * 1024;
}  // namespace

// Epilogues (kvass's CuBlas.Out order, then the fused gate/up).
enum GemmMode { GEMM_BF16 = 0, GEMM_F32 = 1, GEMM_F32_ADD = 2, GEMM_SILU = 3 };


#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KVASS_WGMMA 1
#endif

// A shared-memory matrix descriptor for a K-major tile of 128-byte rows, 128-byte swizzled (8-row groups
// 1,024 bytes apart; the tile 1,024-aligned). Advancing k by 16 advances the start address by 32 bytes.
__device__ __forceinline__ uint64_t wgmma_desc(const void* tile) {
  const uint32_t a = smem_addr(tile);
  return (uint64_t)((a & 0x3FFFF) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t a, uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "n"(1));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads above the wait (the asm's "+f" says they change here).
template <int MT, int NB>
__device__ __forceinline__ void fence_accumulators(float (&acc)[MT][NB][64]) {
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < NB; j++)
#pragma unroll
      for (int e = 0; e < 64; e++) asm volatile("" : "+f"(acc[i][j][e])::"memory");
}

template <int MT, int NB>
__device__ __forceinline__ void zero_accumulators(float (&acc)[MT][NB][64]) {
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < NB; j++)
#pragma unroll
      for (int e = 0; e < 64; e++) acc[i][j][e] = 0.f;
}

// A 2-D box (c0 along the inner dimension, c1 rows) of the tensor map into shared memory; completes on bar.
__device__ __forceinline__ void tma_load_2d(void* dst, const TmaMap* map, int c0, int c1, uint64_t* bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
               ::"r"(smem_addr(dst)), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
               : "memory");
}

// MT: 64-row slices of X per warpgroup (X rows up to 128 MT); NB: 128-row boxes of W per tile.
template <int MT, int NB>
struct GemmShape {
  static constexpr int ROWS = 128 * MT;
  static constexpr int BN = 128 * NB;
  static constexpr int A_BYTES = ROWS * 128;
  static constexpr int STAGE_BYTES = A_BYTES + BN * 128;
  static constexpr int STAGES = (GEMM_SMEM - 2048) / STAGE_BYTES;
  static constexpr int ACC = MT * NB * 64;  // fp32 accumulators per thread
  static_assert(STAGES >= 3, "a stage ring of at least 3");
};

// grid: one CTA per SM at most (owners wait on later CTAs, which must be resident); block GEMM_THREADS;
// dynamic shared GEMM_SMEM. xmap: X [m, K] in 64 x 64 boxes (rows past m read as 0); wmap: W in 64 x 128
// boxes. n: output columns (GEMM_SILU: ffn, W being [2 ffn, K], NB = 2); workspace: gridDim.x * 256 * ACC
// floats; flags: gridDim.x ints, 0 between launches.
template <int MT, int NB>
__device__ __forceinline__ void decode_gemm(const TmaMap* wmap, const TmaMap* xmap, void* __restrict__ y, int m, int n,
                                            int K, int mode, float* __restrict__ workspace, int* __restrict__ flags) {
#ifdef KVASS_WGMMA
  using S = GemmShape<MT, NB>;
  constexpr int STAGES = S::STAGES, BN = S::BN;
  extern __shared__ unsigned char gemm_smem_raw[];
  unsigned char* smem = gemm_smem_raw + ((1024 - (smem_addr(gemm_smem_raw) & 1023)) & 1023);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + STAGES * S::STAGE_BYTES);
  const int tid = threadIdx.x;
  const int k_blocks = K / GEMM_BK;
  const bool silu = mode == GEMM_SILU;
  const int tiles = n / (silu ? BN / 2 : BN);
  const long long units = (long long)tiles * k_blocks;
  const int G = gridDim.x, c = blockIdx.x;
  const long long u0 = units * c / G, u1 = units * (c + 1) / G;
  if (u0 >= u1) return;
  // Unit u (tile u / k_blocks, k-block u % k_blocks) into stage s, by thread 0: one TMA box per 64 X
  // rows and per 128 W rows, all completing on full[s].
  auto load = [&](long long u, int s) {
    const int tile = (int)(u / k_blocks), k0 = (int)(u % k_blocks) * GEMM_BK;
    unsigned char* a_s = smem + s * S::STAGE_BYTES;
    unsigned char* b_s = a_s + S::A_BYTES;
    mbar_expect_tx(full + s, S::STAGE_BYTES);
#pragma unroll
    for (int b = 0; b < 2 * MT; b++) tma_load_2d(a_s + b * 64 * 128, xmap, k0, b * 64, full + s);
#pragma unroll
    for (int nb = 0; nb < NB; nb++) {
      const int row = silu ? (nb == 0 ? tile * 128 : n + tile * 128) : tile * BN + nb * 128;
      tma_load_2d(b_s + nb * 128 * 128, wmap, k0, row, full + s);
    }
  };
  if (tid == 0) {
    for (int s = 0; s < STAGES; s++) mbar_init(full + s, 1);
    mbar_init_fence();
    for (int s = 0; s < STAGES && u0 + s < u1; s++) load(u0 + s, s);
  }
  __syncthreads();

  const int wg = tid >> 7, t = tid & 127;
  float acc[MT][NB][64];
  zero_accumulators(acc);

  for (long long u = u0; u < u1; u++) {
    const int i = (int)(u - u0), s = i % STAGES;
    mbar_wait(full + s, (i / STAGES) & 1);
    const unsigned char* a_s = smem + s * S::STAGE_BYTES;
    const unsigned char* b_s = a_s + S::A_BYTES;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < GEMM_BK / 16; ks++) {
#pragma unroll
      for (int mi = 0; mi < MT; mi++) {
        const uint64_t da = wgmma_desc(a_s + (wg * MT + mi) * 64 * 128 + ks * 32);
#pragma unroll
        for (int nb = 0; nb < NB; nb++) wgmma_m64n128k16(acc[mi][nb], da, wgmma_desc(b_s + nb * 128 * 128 + ks * 32));
      }
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_accumulators(acc);
    __syncthreads();  // both warpgroups are done with the stage: refill it STAGES units on
    if (tid == 0 && u + STAGES < u1) load(u + STAGES, s);

    const int tile = (int)(u / k_blocks), kb = (int)(u % k_blocks);
    if (kb != k_blocks - 1 && u + 1 != u1) continue;  // the tile's k-range in this share goes on
    const long long tile_u0 = (long long)tile * k_blocks;
    if (u0 > tile_u0) {
      // A later part of the tile's k-range (only a share's first tile can be): to the owner.
      float4* mine = reinterpret_cast<float4*>(workspace + (size_t)c * GEMM_THREADS * S::ACC);
#pragma unroll
      for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
          for (int e = 0; e < 64; e += 4)
            __stcg(mine + ((mi * NB + nb) * 16 + e / 4) * GEMM_THREADS + tid,
                   make_float4(acc[mi][nb][e], acc[mi][nb][e + 1], acc[mi][nb][e + 2], acc[mi][nb][e + 3]));
      __threadfence();
      __syncthreads();
      if (tid == 0) atomicExch(flags + c, 1);
    } else {
      // The owner: add the partial sums of the later CTAs whose shares start inside this tile, in order.
      for (int o = c + 1; o < G; o++) {
        const long long os = units * o / G, oe = units * (o + 1) / G;
        if (os >= tile_u0 + k_blocks) break;
        if (os >= oe) continue;
        if (tid == 0) {
          while (atomicAdd(flags + o, 0) == 0) {
          }
          atomicExch(flags + o, 0);
        }
        __syncthreads();
        __threadfence();
        const float4* theirs = reinterpret_cast<const float4*>(workspace + (size_t)o * GEMM_THREADS * S::ACC);
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
          for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int e = 0; e < 64; e += 4) {
              const float4 p = __ldcg(theirs + ((mi * NB + nb) * 16 + e / 4) * GEMM_THREADS + tid);
              acc[mi][nb][e] += p.x;
              acc[mi][nb][e + 1] += p.y;
              acc[mi][nb][e + 2] += p.z;
              acc[mi][nb][e + 3] += p.w;
            }
      }
      // Accumulator e of 128-column block nb: row 16 warp + lane / 4 (+ 8 for e % 4 >= 2), column
      // 8 (e / 4) + 2 (lane % 4) (+ 1 for odd e) of the block.
      const int warp = t >> 5, lane = t & 31;
#pragma unroll
      for (int mi = 0; mi < MT; mi++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
          const int row = (wg * MT + mi) * 64 + warp * 16 + lane / 4 + half * 8;
          if (row >= m) continue;
#pragma unroll
          for (int nb = 0; nb < NB; nb++) {
#pragma unroll
            for (int e = 0; e < 64; e += 4) {
              const int col = nb * 128 + (e / 4) * 8 + 2 * (lane & 3);
              const float v0 = acc[mi][nb][e + 2 * half], v1 = acc[mi][nb][e + 2 * half + 1];
              if (mode == GEMM_SILU) {
                if (NB != 2 || nb != 0) continue;
                // The up value of this column is the same accumulator of block 1. As silu_mul on a bf16
                // [gate; up] row.
                const float g0 = to_float(to_bf16(v0)), g1 = to_float(to_bf16(v1));
                const float a0 = g0 / (1.f + expf(-g0)) * to_float(to_bf16(acc[mi][NB - 1][e + 2 * half]));
                const float a1 = g1 / (1.f + expf(-g1)) * to_float(to_bf16(acc[mi][NB - 1][e + 2 * half + 1]));
                *reinterpret_cast<__nv_bfloat162*>(reinterpret_cast<bf16*>(y) + (size_t)row * n + tile * 128 + col) =
                    __floats2bfloat162_rn(a0, a1);
                continue;
              }
              const size_t idx = (size_t)row * n + (size_t)tile * BN + col;
              if (mode == GEMM_BF16) {
                *reinterpret_cast<__nv_bfloat162*>(reinterpret_cast<bf16*>(y) + idx) = __floats2bfloat162_rn(v0, v1);
              } else {
                float2* p = reinterpret_cast<float2*>(reinterpret_cast<float*>(y) + idx);
                if (mode == GEMM_F32_ADD) {
                  const float2 old = *p;
                  *p = make_float2(old.x + v0, old.y + v1);
                } else {
                  *p = make_float2(v0, v1);
                }
              }
            }
          }
        }
      }
    }
    zero_accumulators(acc);
  }
#endif
}

#define DECODE_GEMM(MT, NB)                                                                                         \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1) decode_gemm_m##MT##_n##NB(                         \
      const __grid_constant__ TmaMap wmap, const __grid_constant__ TmaMap xmap, void* y, int m, int n, int K,       \
      int mode, float* workspace, int* flags) {                                                                     \
    decode_gemm<MT, NB>(&wmap, &xmap, y, m, n, K, mode, workspace, flags);                                          \
  }
DECODE_GEMM(1, 1)
DECODE_GEMM(1, 2)
DECODE_GEMM(2, 1)
