// Causal attention for prompt chunks on tensor cores (flash-attention 2 style), over the paged cache.
//
// A query tile is up to 64 consecutive tokens of one sequence (a prefill or chunked-prefill piece);
// one thread block handles one (tile, query head): 4 warps of 16 query rows each. K/V come in tiles
// of 64 positions gathered through the block table into shared memory; S = Q K^T and O += P V run
// as mma.sync m16n8k16 bf16 products with fp32 accumulators, the softmax online in registers.
// The tile's K/V (positions [0, last position]) must already be in the cache.
#include "common.cuh"

#include "mma.cuh"

namespace {

constexpr int BM = 64;   // query rows per block
constexpr int BN = 64;   // keys per tile

}  // namespace

// tiles: [numTiles][2] (first token, count <= 64). q: [n, heads, D]; out: [n, heads, D].
// grid: (numTiles, heads), block: 128, dynamic shared memory: 3 * 64 * (D + 8) * 2 bytes.
template <int D>
__device__ __forceinline__ void flash_prefill(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                                              const bf16* __restrict__ v_cache, const int* __restrict__ block_tables,
                                              const int* __restrict__ tok_seq, const int* __restrict__ positions,
                                              const int* __restrict__ tiles, bf16* __restrict__ out, int num_heads,
                                              int num_kv_heads, int block_size, int max_blocks, float scale_log2) {
  constexpr int STRIDE = D + 8;  // row padding: ldmatrix rows land in different banks
  constexpr int CHUNKS = D / 8;  // 16-byte pieces per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [BM][STRIDE]
  bf16* ks = qs + BM * STRIDE;                     // [BN][STRIDE]
  bf16* vs = ks + BN * STRIDE;                     // [BN][STRIDE]
  __shared__ int slots[BN];

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.y, kvh = h / (num_heads / num_kv_heads);
  const int t0 = tiles[2 * blockIdx.x], count = tiles[2 * blockIdx.x + 1];
  const int p0 = positions[t0], last = p0 + count - 1;
  const int* table = block_tables + (size_t)tok_seq[t0] * max_blocks;

  for (int i = tid; i < BM * CHUNKS; i += 128) {
    const int r = i / CHUNKS, c = (i % CHUNKS) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < count) v = *reinterpret_cast<const uint4*>(q + ((size_t)(t0 + r) * num_heads + h) * D + c);
    *reinterpret_cast<uint4*>(qs + r * STRIDE + c) = v;
  }
  __syncthreads();

  // This warp's 16 query rows as A fragments, one per 16 columns of D.
  const int r0 = warp * 16;
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    const int m = lane >> 3;
    ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3],
                qs + (r0 + (lane & 7) + (m & 1) * 8) * STRIDE + kk * 16 + (m >> 1) * 8);
  }

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float row_max[2] = {-CUDART_INF_F, -CUDART_INF_F}, row_sum[2] = {0.f, 0.f};
  const int quad_row = lane >> 2, quad_col = 2 * (lane & 3);
  const int pos_row[2] = {p0 + r0 + quad_row, p0 + r0 + quad_row + 8};

  for (int kt = 0; kt <= last; kt += BN) {
    __syncthreads();  // everyone is done with the previous K/V tile
    if (tid < BN) {
      const int key = kt + tid;
      slots[tid] = key <= last ? table[key / block_size] * block_size + key % block_size : -1;
    }
    __syncthreads();
#pragma unroll 4
    for (int i = tid; i < BN * CHUNKS; i += 128) {
      const int r = i / CHUNKS, c = (i % CHUNKS) * 8, slot = slots[r];
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (slot >= 0) {
        const size_t off = ((size_t)slot * num_kv_heads + kvh) * D + c;
        kv = *reinterpret_cast<const uint4*>(k_cache + off);
        vv = *reinterpret_cast<const uint4*>(v_cache + off);
      }
      *reinterpret_cast<uint4*>(ks + r * STRIDE + c) = kv;
      *reinterpret_cast<uint4*>(vs + r * STRIDE + c) = vv;
    }
    __syncthreads();

    // S = Q K^T for 16 rows x 64 keys.
    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
      for (int nt = 0; nt < BN / 16; nt++) {
        const int m = lane >> 3;
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, ks + (nt * 16 + (lane & 7) + (m >> 1) * 8) * STRIDE + kk * 16 + (m & 1) * 8);
        mma_bf16(s[2 * nt], qf[kk], b0, b1);
        mma_bf16(s[2 * nt + 1], qf[kk], b2, b3);
      }
    }
    // Causal mask, scale (log2 domain), online softmax; each thread holds 2 rows x 16 columns.
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int key = kt + nt * 8 + quad_col + e;
          float v = key <= pos_row[rr] ? s[nt][2 * rr + e] * scale_log2 : -CUDART_INF_F;
          s[nt][2 * rr + e] = v;
          mx = fmaxf(mx, v);
        }
      }
      online_softmax_step<BN / 8, D / 8>(s, o, row_max[rr], row_sum[rr], rr, mx);
    }
    // O += P V: P from the S accumulators (their layout is the A fragment's), V through ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                       pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 16; dt++) {
        const int m = lane >> 3;
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, vs + (kk * 16 + (lane & 7) + (m & 1) * 8) * STRIDE + dt * 16 + (m >> 1) * 8);
        mma_bf16(o[2 * dt], a, b0, b1);
        mma_bf16(o[2 * dt + 1], a, b2, b3);
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    float sum = row_sum[rr];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int r = r0 + quad_row + 8 * rr;
    if (r < count) {
      const float inv = 1.f / sum;
      bf16* dst = out + ((size_t)(t0 + r) * num_heads + h) * D + quad_col;
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        *reinterpret_cast<__nv_bfloat162*>(dst + dt * 8) =
            __floats2bfloat162_rn(o[dt][2 * rr] * inv, o[dt][2 * rr + 1] * inv);
      }
    }
  }
}

#define FLASH_PREFILL(D)                                                                                              \
  extern "C" __global__ void __launch_bounds__(128) flash_prefill_d##D(                                              \
      const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* block_tables, const int* tok_seq,           \
      const int* positions, const int* tiles, bf16* out, int num_heads, int num_kv_heads, int block_size,             \
      int max_blocks, float scale_log2) {                                                                             \
    flash_prefill<D>(q, k_cache, v_cache, block_tables, tok_seq, positions, tiles, out, num_heads, num_kv_heads,      \
                     block_size, max_blocks, scale_log2);                                                             \
  }
FLASH_PREFILL(64)
FLASH_PREFILL(128)
