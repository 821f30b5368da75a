// Benchmarks only: K/V read patterns without the attention arithmetic, to tell how much of the decode
// kernel's distance from the read-only ceiling is the pattern of its reads (CudaAttentionProbe).
// Cache layout as in the real kernels: [slots][kv heads][head bytes], paged blocks of 16 slots.
#include "mma.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
               ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)) : "memory");
}

// Today's pattern: a block per (sequence, kv head), 4 warps each taking paged blocks w, w + 4, ...; a
// warp's tile is the block's 16 rows of its head (K and V, one bulk copy per row), two buffers a warp;
// rows row_stride bytes apart in shared memory (head_bytes: dense; + 16: the attention kernel's padding).
extern "C" __global__ void __launch_bounds__(128) read_pattern_head(const char* k, const char* v, const int* tables,
                                                                    int max_blocks, int blocks, int kv_heads,
                                                                    int head_bytes, int row_stride, unsigned* sink) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ __align__(8) uint64_t bars[4][2];
  const int kvh = blockIdx.x, item = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int* table = tables + (size_t)item * max_blocks;
  unsigned char* mine = smem + warp * 4 * 16 * row_stride;
  if (lane == 0) {
    mbar_init(&bars[warp][0], 1);
    mbar_init(&bars[warp][1], 1);
    mbar_init_fence();
  }
  __syncwarp();
  auto load = [&](int tile, int buf) {
    if (lane == 0) mbar_expect_tx(&bars[warp][buf], 32 * head_bytes);
    __syncwarp();
    const int r = lane & 15;
    const char* src = (lane < 16 ? k : v) + (((size_t)table[tile] * 16 + r) * kv_heads + kvh) * head_bytes;
    bulk_copy(mine + (2 * buf + (lane >> 4)) * 16 * row_stride + r * row_stride, src, head_bytes, &bars[warp][buf]);
  };
  unsigned x = 0;
  if (warp < blocks) load(warp, 0);
  for (int t = warp, it = 0; t < blocks; t += 4, it++) {
    const int cur = it & 1;
    if (t + 4 < blocks) load(t + 4, cur ^ 1);
    mbar_wait(&bars[warp][cur], (it >> 1) & 1);
    x ^= reinterpret_cast<const unsigned*>(mine + 2 * cur * 16 * row_stride)[lane];
    __syncwarp();
  }
  if (x == 0x9e3779b9u) *sink = x;
}

// The alternative: a block per (sequence, part of its paged blocks) reads whole paged blocks (all kv
// heads: one contiguous bulk copy for K, one for V) through `stages` buffers.
extern "C" __global__ void __launch_bounds__(128) read_pattern_seq(const char* k, const char* v, const int* tables,
                                                                   int max_blocks, int blocks, int block_bytes,
                                                                   int stages, unsigned* sink) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ __align__(8) uint64_t full[8];
  const int item = blockIdx.x, parts = gridDim.y, per = (blocks + parts - 1) / parts;
  const int first = blockIdx.y * per, last = min(blocks, first + per), n = last - first;
  const int* table = tables + (size_t)item * max_blocks + first;
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; s++) mbar_init(&full[s], 1);
    mbar_init_fence();
  }
  __syncthreads();
  auto load = [&](int t) {
    const int s = t % stages;
    mbar_expect_tx(&full[s], 2 * block_bytes);
    const size_t off = (size_t)table[t] * block_bytes;
    bulk_copy(smem + (size_t)2 * s * block_bytes, k + off, block_bytes, &full[s]);
    bulk_copy(smem + (size_t)(2 * s + 1) * block_bytes, v + off, block_bytes, &full[s]);
  };
  if (threadIdx.x == 0)
    for (int t = 0; t < min(stages, n); t++) load(t);
  unsigned x = 0;
  for (int t = 0; t < n; t++) {
    const int s = t % stages;
    mbar_wait(&full[s], (t / stages) & 1);
    x ^= reinterpret_cast<const unsigned*>(smem + (size_t)2 * s * block_bytes)[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0 && t + stages < n) load(t + stages);
  }
  if (x == 0x9e3779b9u) *sink = x;
}
#endif
