// Paged attention on tensor cores for decode (and any short chunk), same interface and results as
// paged_attention in attention.cu.
//
// The `group` query heads of a token that share a K/V head are the rows of one 16-row mma tile
// (rows >= group are zero), so GQA reads each K/V row once and the products run as mma.sync
// m16n8k16 instead of SIMT FMAs and shuffles (that kernel is issue-bound: ncu, H100, batch 256).
// Each of the block's 4 warps walks its own 16-key tiles of the partition (tiles w, w + 4, ...):
// K/V rows gathered through the block table into the warp's two shared-memory buffers (TMA boxes or
// cp.async, below), so the next tile loads while the current one computes; online softmax in registers
// (log2 domain); the warps combine once at the end. With split-K the last partition block of a
// (token, kv head) to finish combines the partitions itself (counters: one int per (item, kv head), 0
// between launches), so there is no attention_reduce launch.
//
// ROPE (decode steps: every token is its sequence's only one) also does qkv_rope_store's work, so that
// kernel is not launched: each block rotates its group's query heads straight from the fp32 qkv row
// (+ bias) into shared memory, and the block whose partition ends at the new position rotates the
// token's K and writes K and V into the cache before it loads its own tiles (the other partitions never
// read that slot). Both rotate with rope_pair (common.cuh), so the same bits.
#include "mma.cuh"

// TENSOR (Hopper): a warp's K/V tile comes in as tensor-map boxes (TMA) into dense, 128-byte-swizzled
// rows, completing on the buffer's mbarrier; elsewhere (or block sizes not a multiple of 16) 16-byte
// cp.async per lane into padded rows. The TMA path reads ~5% faster: the padded rows' 272-byte pitch
// alone cost that much in the read-pattern probe (CudaAttentionProbe).
// TENSOR loads: a box of {64 dims, 1 kv head, 16 slots} of a layer's cache ([slots][kv heads][D]) into
// 16 rows of 128 bytes, 128-byte swizzled (16-byte chunk c of row r at c ^ (r % 8)): aligned, dense,
// and conflict-free for ldmatrix, which the 16-byte-padded rows of the other modes are not quite.
__device__ __forceinline__ void tma_load_3d(void* dst, const TmaMap* map, int c0, int c1, int c2, uint64_t* bar) {
#if KVASS_TMA
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
      ::"r"(smem_addr(dst)), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
#endif
}

template <int D, bool ROPE, bool TMA>
__device__ __forceinline__ void paged_attention_mma(const bf16* __restrict__ q, const float* __restrict__ qkv,
                                                    const float* __restrict__ bias, const float* __restrict__ inv_freq,
                                                    const int* __restrict__ slots, bf16* __restrict__ k_cache,
                                                    bf16* __restrict__ v_cache, const int* __restrict__ block_tables,
                                                    const int* __restrict__ tok_seq, const int* __restrict__ positions,
                                                    const int* __restrict__ token_list, bf16* __restrict__ out,
                                                    float* __restrict__ part_out, float* __restrict__ part_ml,
                                                    int* __restrict__ counters, int num_heads, int num_kv_heads, int group, int block_size,
                                                    int max_blocks, int part_size, float scale,
                                                    const TmaMap* __restrict__ k_map, const TmaMap* __restrict__ v_map) {
  constexpr int NW = 4;             // warps per block
  constexpr int KT = 16;            // keys per warp tile
  constexpr int STRIDE = D + 8;     // padded rows: ldmatrix rows land in different banks
  constexpr int CHUNKS = D / 8;     // 16-byte pieces per row
  constexpr int BUF = KT * STRIDE;  // elements of one K or V tile
  constexpr float LOG2E = 1.4426950408889634f;
  // [NW][2 buffers][K, V][KT][STRIDE]; TENSOR: [NW][2 buffers][K, V][D / 64 halves][KT][128 bytes], 1 KB aligned
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  __shared__ __align__(16) bf16 q_s[16 * STRIDE];
  __shared__ float red_m[NW][16], red_l[NW][16];
  __shared__ __align__(8) uint64_t bars[NW][2];  // TENSOR: one per warp and tile buffer


  const int item = blockIdx.y, kvh = blockIdx.x, part = blockIdx.z;
  const int tok = token_list ? token_list[item] : item;
  const int ctx = positions[tok] + 1;
  const int begin = part * part_size;
  if (begin >= ctx) return;  // NOTE: the reducer reads only partitions that hold keys
  const int end = min(ctx, begin + part_size);
  const int* table = block_tables + (size_t)tok_seq[tok] * max_blocks;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  constexpr bool TENSOR = TMA && KVASS_TMA;
  constexpr int HALVES = D / 64, HALF_BYTES = KT * 128;
  unsigned char* smem = smem_raw;
  if constexpr (TENSOR) smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  // TENSOR: half h of the K (kv 0) or V (kv 1) tile in buffer buf of this warp.
  auto half_tile = [&](int buf, int kv, int h) {
    return smem + (size_t)(((warp * 2 + buf) * 2 + kv) * HALVES + h) * HALF_BYTES;
  };
  if (TENSOR && lane == 0) {
    mbar_init(&bars[warp][0], 1);
    mbar_init(&bars[warp][1], 1);
    mbar_init_fence();
  }
  __syncwarp();
  const float scale_log2 = scale * LOG2E;

  bf16* mine = reinterpret_cast<bf16*>(smem) + warp * 4 * BUF;
  const int tiles = (end - begin + KT - 1) / KT;
  auto load_tile = [&](int tile, int buf) {
    bf16* kd = mine + (2 * buf) * BUF;
    bf16* vd = kd + BUF;
    const int k0 = begin + tile * KT;
    if constexpr (TENSOR) {
      // The tile is 16 consecutive slots of one paged block (block_size % 16 == 0, k0 % 16 == 0): one box
      // per half of K and of V. Slots past the partition come in too; attention() zeroes their V rows.
      if (lane == 0) {
        const int slot0 = table[k0 / block_size] * block_size + k0 % block_size;
        mbar_expect_tx(&bars[warp][buf], 2u * HALVES * HALF_BYTES);
#pragma unroll
        for (int h = 0; h < HALVES; h++) {
          tma_load_3d(half_tile(buf, 0, h), k_map, h * 64, kvh, slot0, &bars[warp][buf]);
          tma_load_3d(half_tile(buf, 1, h), v_map, h * 64, kvh, slot0, &bars[warp][buf]);
        }
      }
    } else {
#pragma unroll 4
    for (int i = lane; i < KT * CHUNKS; i += 32) {
      const int r = i / CHUNKS, c = (i % CHUNKS) * 8, pos = k0 + r;
      if (pos < end) {
        const size_t slot = (size_t)table[pos / block_size] * block_size + pos % block_size;
        const size_t off = (slot * num_kv_heads + kvh) * D + c;
        cp_async16(kd + r * STRIDE + c, k_cache + off);
        cp_async16(vd + r * STRIDE + c, v_cache + off);
      } else {
        *reinterpret_cast<uint4*>(kd + r * STRIDE + c) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(vd + r * STRIDE + c) = make_uint4(0, 0, 0, 0);
      }
    }
    cp_async_commit();
    }
  };

  // The first K/V tile is on its way before the query: both latencies overlap. With ROPE the new
  // position's K/V are written below, so only a warp whose first tile holds that position waits for it.
  const bool writes_new_kv = ROPE && end == ctx && slots[tok] >= 0;
  const bool first_waits = writes_new_kv && warp == tiles - 1;
  if (!first_waits && warp < tiles) load_tile(warp, 0);
  if (ROPE) {
    const int q_dim = num_heads * D, kv_dim = num_kv_heads * D;
    const float* row = qkv + (size_t)tok * (q_dim + 2 * kv_dim);
    const float pos = (float)positions[tok];
    for (int i = tid; i < 16 * (D / 2); i += NW * 32) {
      const int r = i / (D / 2), j = i % (D / 2);
      float y1 = 0.f, y2 = 0.f;
      if (r < group) rope_pair(row, bias, inv_freq, pos, kvh * group + r, j, D, y1, y2);
      q_s[r * STRIDE + j] = to_bf16(y1);
      q_s[r * STRIDE + j + D / 2] = to_bf16(y2);
    }
    if (writes_new_kv) {
      const size_t off = ((size_t)slots[tok] * num_kv_heads + kvh) * D;
      for (int j = tid; j < D / 2; j += NW * 32) {
        float y1, y2;
        rope_pair(row, bias, inv_freq, pos, num_heads + kvh, j, D, y1, y2);
        k_cache[off + j] = to_bf16(y1);
        k_cache[off + j + D / 2] = to_bf16(y2);
      }
      for (int j = tid; j < D; j += NW * 32) {
        const int col = q_dim + kv_dim + kvh * D + j;
        v_cache[off + j] = to_bf16(row[col] + (bias ? bias[col] : 0.f));
      }
      __threadfence_block();
#if KVASS_TMA
      if (TENSOR) asm volatile("fence.proxy.async.global;\n" ::: "memory");  // TMA reads it
#endif
    }
  } else {
    for (int i = tid; i < 16 * CHUNKS; i += NW * 32) {
      const int r = i / CHUNKS, c = (i % CHUNKS) * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (r < group) v = *reinterpret_cast<const uint4*>(q + ((size_t)tok * num_heads + kvh * group + r) * D + c);
      *reinterpret_cast<uint4*>(q_s + r * STRIDE + c) = v;
    }
  }
  __syncthreads();
  if (first_waits) load_tile(warp, 0);
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    const int m = lane >> 3;
    ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], q_s + ((lane & 7) + (m & 1) * 8) * STRIDE + kk * 16 + (m >> 1) * 8);
  }

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float row_max[2] = {-CUDART_INF_F, -CUDART_INF_F}, row_sum[2] = {0.f, 0.f};
  const int quad_row = lane >> 2, quad_col = 2 * (lane & 3);

  for (int t = warp, it = 0; t < tiles; t += NW, it++) {
    const int cur = it & 1;
    if constexpr (TENSOR) {
      if (t + NW < tiles) load_tile(t + NW, cur ^ 1);
      mbar_wait(&bars[warp][cur], (it >> 1) & 1);
      if (TENSOR && begin + t * KT + KT > end) {
        // Past the partition's end: zero the V rows (whatever a slot holds must not reach O through P = 0;
        // K's are masked to -inf below). Whole 128-byte rows, so the swizzle does not matter.
        const int rows = end - begin - t * KT;
        for (int i = lane; i < (KT - rows) * HALVES * 8; i += 32) {
          const int r = rows + i / (HALVES * 8), h = (i / 8) % HALVES, c = i % 8;
          *reinterpret_cast<uint4*>(half_tile(cur, 1, h) + r * 128 + c * 16) = make_uint4(0, 0, 0, 0);
        }
      }
    } else if (t + NW < tiles) {
      load_tile(t + NW, cur ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const bf16* kb = mine + (2 * cur) * BUF;
    const bf16* vb = kb + BUF;
#ifdef KVASS_ATTENTION_NO_MATH  // probe_attention.cu: the same kernel without the tile's arithmetic
    if (lane == 0) row_sum[0] += to_float(kb[0]) + to_float(vb[0]);
    __syncwarp();
    continue;
#endif
    // S = Q K^T: 16 rows x 16 keys.
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const int m = lane >> 3;
      uint32_t b0, b1, b2, b3;
      if constexpr (TENSOR) {
        const int row = (lane & 7) + (m >> 1) * 8, chunk = ((kk & 3) << 1) | (m & 1);
        ldmatrix_x4(b0, b1, b2, b3, half_tile(cur, 0, kk >> 2) + row * 128 + ((chunk ^ (row & 7)) << 4));
      } else {
        ldmatrix_x4(b0, b1, b2, b3, kb + ((lane & 7) + (m >> 1) * 8) * STRIDE + kk * 16 + (m & 1) * 8);
      }
      mma_bf16(s[0], qf[kk], b0, b1);
      mma_bf16(s[1], qf[kk], b2, b3);
    }
    const int k0 = begin + t * KT;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
      if (rr == 1 && group <= 8) {
        // Rows 8..15 are padding (at most 8 query heads share a kv head): no softmax for them, zero weights.
        s[0][2] = s[0][3] = s[1][2] = s[1][3] = 0.f;
        continue;
      }
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int nt = 0; nt < 2; nt++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int key = k0 + nt * 8 + quad_col + e;
          const float v = key < end ? s[nt][2 * rr + e] * scale_log2 : -CUDART_INF_F;
          s[nt][2 * rr + e] = v;
          mx = fmaxf(mx, v);
        }
      }
      online_softmax_step<2, D / 8>(s, o, row_max[rr], row_sum[rr], rr, mx);
    }
    // O += P V over the tile's 16 keys.
    const uint32_t a[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                           pack_bf16(s[1][2], s[1][3])};
#pragma unroll
    for (int dt = 0; dt < D / 16; dt++) {
      const int m = lane >> 3;
      uint32_t b0, b1, b2, b3;
      if constexpr (TENSOR) {
        const int row = (lane & 7) + (m & 1) * 8, chunk = ((dt & 3) << 1) | (m >> 1);
        ldmatrix_x4_trans(b0, b1, b2, b3, half_tile(cur, 1, dt >> 2) + row * 128 + ((chunk ^ (row & 7)) << 4));
      } else {
        ldmatrix_x4_trans(b0, b1, b2, b3, vb + ((lane & 7) + (m & 1) * 8) * STRIDE + dt * 16 + (m >> 1) * 8);
      }
      mma_bf16(o[2 * dt], a, b0, b1);
      mma_bf16(o[2 * dt + 1], a, b2, b3);
    }
    __syncwarp();  // this buffer is refilled two tiles on
  }

  // Combine the warps: their tiles' buffers become the exchange area.
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    row_sum[rr] += __shfl_xor_sync(0xffffffffu, row_sum[rr], 1);
    row_sum[rr] += __shfl_xor_sync(0xffffffffu, row_sum[rr], 2);
  }
  __syncthreads();
  float* red_o = reinterpret_cast<float*>(smem);  // [NW][16][D]
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    const int row = quad_row + 8 * rr;
    if (row < group) {
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        red_o[(warp * 16 + row) * D + dt * 8 + quad_col] = o[dt][2 * rr];
        red_o[(warp * 16 + row) * D + dt * 8 + quad_col + 1] = o[dt][2 * rr + 1];
      }
      if ((lane & 3) == 0) {
        red_m[warp][row] = row_max[rr];
        red_l[warp][row] = row_sum[rr];
      }
    }
  }
  __syncthreads();
  merge_warps_and_store<NW, D, true>(&red_m[0][0], &red_l[0][0], red_o, 16, group, kvh * group, tok, item, part,
                                     num_heads, out, part_out, part_ml);
  if (gridDim.z > 1 && last_block_to_arrive(counters + (size_t)item * num_kv_heads + kvh, (ctx + part_size - 1) / part_size)) {
    for (int g = warp; g < group; g += NW)
      combine_partitions_warp(part_out, part_ml, out, item, tok, kvh * group + g, num_heads, D, gridDim.z,
                              (ctx + part_size - 1) / part_size);
  }
}

#ifndef KVASS_DECODE_NAME
#define KVASS_DECODE_NAME(name) name
#endif
// The _tma variants take the layer's K and V tensor maps (CudaKernels.kvMap) after the usual arguments.
#define PAGED_ATTENTION_MMA_VARIANT(D, TMA, SUFFIX, MAP_PARAMS, MAPS)                                                 \
  extern "C" __global__ void __launch_bounds__(128) KVASS_DECODE_NAME(paged_attention_mma##SUFFIX##_d##D)(            \
      const bf16* q, bf16* k_cache, bf16* v_cache, const int* block_tables, const int* tok_seq, const int* positions, \
      const int* token_list, bf16* out, float* part_out, float* part_ml, int* counters, int num_heads,               \
      int num_kv_heads, int group, int block_size, int max_blocks, int part_size, float scale MAP_PARAMS) {           \
    paged_attention_mma<D, false, TMA>(q, nullptr, nullptr, nullptr, nullptr, k_cache, v_cache, block_tables,        \
                                       tok_seq, positions, token_list, out, part_out, part_ml, counters, num_heads,   \
                                       num_kv_heads, group, block_size, max_blocks, part_size, scale, MAPS);          \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(128) KVASS_DECODE_NAME(paged_attention_mma_rope##SUFFIX##_d##D)(       \
      const float* qkv, const float* bias, const float* inv_freq, const int* slots, bf16* k_cache, bf16* v_cache,     \
      const int* block_tables, const int* tok_seq, const int* positions, bf16* out, float* part_out, float* part_ml, \
      int* counters, int num_heads, int num_kv_heads, int group, int block_size, int max_blocks, int part_size,      \
      float scale MAP_PARAMS) {                                                                                       \
    paged_attention_mma<D, true, TMA>(nullptr, qkv, bias, inv_freq, slots, k_cache, v_cache, block_tables, tok_seq,   \
                                      positions, nullptr, out, part_out, part_ml, counters, num_heads, num_kv_heads,  \
                                      group, block_size, max_blocks, part_size, scale, MAPS);                         \
  }
#define KVASS_NO_MAPS nullptr, nullptr
#define KVASS_MAP_PARAMS , const __grid_constant__ TmaMap k_map, const __grid_constant__ TmaMap v_map
#define KVASS_MAPS &k_map, &v_map
#define PAGED_ATTENTION_MMA(D)                                            \
  PAGED_ATTENTION_MMA_VARIANT(D, false, , , KVASS_NO_MAPS)                \
  PAGED_ATTENTION_MMA_VARIANT(D, true, _tma, KVASS_MAP_PARAMS, KVASS_MAPS)
PAGED_ATTENTION_MMA(64)
PAGED_ATTENTION_MMA(128)
