// Paged attention over the K/V cache, for any mix of prefill, chunked-prefill and decode tokens.
//
// Every query token t attends causally to positions [0, positions[t]] of its own sequence, whose
// K/V slots come from the sequence's block table: slot = table[pos / B] * B + pos % B, the
// addressing CpuKvCache uses. Cache layout per layer: [slots, kv_heads, D] bf16.
//
// One thread block handles one (token, kv head, partition): the GROUP query heads that share the
// kv head read each K/V row once (GQA/MQA). Long contexts split into partitions (split-K, as in
// flash-decoding) whose partial results attention_reduce combines; with one partition the block
// writes the output itself. Within a partition, keys go in chunks with an online softmax.
#include "common.cuh"

template <int D, int MAXG>
struct AttnShape {
  static constexpr int NT = 128;                    // threads per block
  static constexpr int TG = D / 8;                  // threads per key row, 8 dims (16 bytes) each
  static constexpr int R = NT / TG;                 // key rows per pass
  static constexpr int CHUNK = R > 64 ? R : 64;     // keys per online-softmax step
  static constexpr int KPR = CHUNK / R;             // keys per thread per chunk
  static constexpr int SCORE_FLOATS = MAXG * CHUNK;
  static constexpr int RED_FLOATS = R * MAXG * D;   // per-row partial outputs, reduced at the end
  static constexpr int SMEM_FLOATS = SCORE_FLOATS > RED_FLOATS ? SCORE_FLOATS : RED_FLOATS;
  static_assert(TG >= 1 && TG <= 32 && (TG & (TG - 1)) == 0, "D / 8 must be a power of two <= 32");
};

// q: [n, heads, D] bf16. out: [n, heads, D] bf16 (one partition) or part_out: [m, heads, parts, D]
// fp32 and part_ml: [m, heads, parts, 2] (max, sum) with parts = gridDim.z. The m = gridDim.x query
// tokens are token_list[0..m) (or 0..m when token_list is null).
template <int D, int MAXG>
__device__ __forceinline__ void paged_attention(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                                                const bf16* __restrict__ v_cache, const int* __restrict__ block_tables,
                                                const int* __restrict__ tok_seq, const int* __restrict__ positions,
                                                const int* __restrict__ token_list, bf16* __restrict__ out,
                                                float* __restrict__ part_out,
                                                float* __restrict__ part_ml, int num_heads, int num_kv_heads, int group,
                                                int block_size, int max_blocks, int part_size, float scale) {
  using S = AttnShape<D, MAXG>;
  constexpr int NT = S::NT, TG = S::TG, R = S::R, CHUNK = S::CHUNK, KPR = S::KPR;
  __shared__ __align__(16) float smem[S::SMEM_FLOATS];
  __shared__ float m_s[MAXG], l_s[MAXG], alpha_s[MAXG];
  float* p_s = smem;  // [MAXG][CHUNK] scores, then probabilities

  // NOTE: the kv head is the fastest grid index, so blocks running together read whole K/V slot rows.
  const int item = blockIdx.y, kvh = blockIdx.x, part = blockIdx.z;
  const int tok = token_list ? token_list[item] : item;
  const int ctx = positions[tok] + 1;
  const int begin = part * part_size;
  if (begin >= ctx) return;  // NOTE: the reducer reads only partitions that hold keys
  const int end = min(ctx, begin + part_size);
  const int* table = block_tables + (size_t)tok_seq[tok] * max_blocks;
  const int tid = threadIdx.x, lane = tid % TG, row = tid / TG;
  const size_t slot_stride = (size_t)num_kv_heads * D;
  const bf16* kbase = k_cache + (size_t)kvh * D + lane * 8;
  const bf16* vbase = v_cache + (size_t)kvh * D + lane * 8;

  // This thread's 8 dims of every query head of the group, pre-scaled.
  float qr[MAXG][8];
#pragma unroll
  for (int g = 0; g < MAXG; g++) {
    if (g < group) {
      const uint4 raw = *reinterpret_cast<const uint4*>(q + ((size_t)tok * num_heads + kvh * group + g) * D + lane * 8);
      unpack8(raw, qr[g]);
#pragma unroll
      for (int e = 0; e < 8; e++) qr[g][e] *= scale;
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++) qr[g][e] = 0.f;
    }
  }
  if (tid < MAXG) {
    m_s[tid] = -CUDART_INF_F;
    l_s[tid] = 0.f;
  }
  float acc[MAXG][8];
#pragma unroll
  for (int g = 0; g < MAXG; g++)
#pragma unroll
    for (int e = 0; e < 8; e++) acc[g][e] = 0.f;
  __syncthreads();

  for (int c0 = begin; c0 < end; c0 += CHUNK) {
    const int cn = min(CHUNK, end - c0);
    // All of this chunk's K and V loads in flight at once.
    uint4 kr[KPR], vr[KPR];
#pragma unroll
    for (int k = 0; k < KPR; k++) {
      const int j = k * R + row;
      if (j < cn) {
        const int pos = c0 + j;
        const size_t slot = (size_t)table[pos / block_size] * block_size + pos % block_size;
        kr[k] = *reinterpret_cast<const uint4*>(kbase + slot * slot_stride);
        vr[k] = *reinterpret_cast<const uint4*>(vbase + slot * slot_stride);
      } else {
        kr[k] = make_uint4(0, 0, 0, 0);
        vr[k] = make_uint4(0, 0, 0, 0);
      }
    }
    // 1. scores
#pragma unroll
    for (int k = 0; k < KPR; k++) {
      float kf[8];
      unpack8(kr[k], kf);
      float s[MAXG];
#pragma unroll
      for (int g = 0; g < MAXG; g++) {
        s[g] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) s[g] += qr[g][e] * kf[e];
      }
#pragma unroll
      for (int o = TG / 2; o > 0; o >>= 1)
#pragma unroll
        for (int g = 0; g < MAXG; g++) s[g] += __shfl_xor_sync(0xffffffffu, s[g], o);
      const int j = k * R + row;
      if (lane == 0)
#pragma unroll
        for (int g = 0; g < MAXG; g++) p_s[g * CHUNK + j] = j < cn ? s[g] : -CUDART_INF_F;
    }
    __syncthreads();
    // 2. online softmax: one warp per query head
    {
      const int warp = tid >> 5, wl = tid & 31;
      for (int g = warp; g < MAXG; g += NT / 32) {
        float mx = -CUDART_INF_F;
        for (int j = wl; j < CHUNK; j += 32) mx = fmaxf(mx, p_s[g * CHUNK + j]);
        mx = warp_max(mx);
        const float m_old = m_s[g], m_new = fmaxf(m_old, mx);
        float sum = 0.f;
        for (int j = wl; j < CHUNK; j += 32) {
          const float p = expf(p_s[g * CHUNK + j] - m_new);
          p_s[g * CHUNK + j] = p;
          sum += p;
        }
        sum = warp_sum(sum);
        if (wl == 0) {
          const float a = expf(m_old - m_new);
          alpha_s[g] = a;
          l_s[g] = l_s[g] * a + sum;
          m_s[g] = m_new;
        }
      }
    }
    __syncthreads();
    // 3. acc = acc * alpha + P V
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
      const float a = alpha_s[g];
#pragma unroll
      for (int e = 0; e < 8; e++) acc[g][e] *= a;
    }
#pragma unroll
    for (int k = 0; k < KPR; k++) {
      const int j = k * R + row;
      if (j < cn) {
        float vf[8];
        unpack8(vr[k], vf);
#pragma unroll
        for (int g = 0; g < MAXG; g++) {
          const float p = p_s[g * CHUNK + j];
#pragma unroll
          for (int e = 0; e < 8; e++) acc[g][e] += p * vf[e];
        }
      }
    }
    __syncthreads();  // p_s is rewritten by the next chunk
  }

  // Sum the R rows' partial outputs.
  float* red = smem;  // [R][MAXG][D]
#pragma unroll
  for (int g = 0; g < MAXG; g++) {
    float4* dst = reinterpret_cast<float4*>(red + (row * MAXG + g) * D + lane * 8);
    dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
    dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
  }
  __syncthreads();
  for (int i = tid; i < group * D; i += NT) {
    const int g = i / D, d = i % D;
    float sum = 0.f;
#pragma unroll 8
    for (int r = 0; r < R; r++) sum += red[(r * MAXG + g) * D + d];
    const int h = kvh * group + g;
    if (gridDim.z == 1) {
      out[((size_t)tok * num_heads + h) * D + d] = to_bf16(sum / l_s[g]);
    } else {
      // NOTE: partials are indexed by the block's place in the token list, not by the token.
      const size_t idx = ((size_t)item * num_heads + h) * gridDim.z + part;
      part_out[idx * D + d] = sum / l_s[g];
      if (d == 0) {
        part_ml[idx * 2] = m_s[g];
        part_ml[idx * 2 + 1] = l_s[g];
      }
    }
  }
}

// Variant: the block's 4 warps walk the partition's keys independently (warp w takes chunks w, w + 4,
// ...), each with its own online softmax, and meet only once at the end. No barrier inside the key
// loop, so one warp's loads overlap the others' arithmetic.
template <int D, int MAXG, int KPT>
__device__ __forceinline__ void paged_attention_warps(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                                                      const bf16* __restrict__ v_cache,
                                                      const int* __restrict__ block_tables,
                                                      const int* __restrict__ tok_seq,
                                                      const int* __restrict__ positions,
                                                      const int* __restrict__ token_list, bf16* __restrict__ out,
                                                      float* __restrict__ part_out, float* __restrict__ part_ml,
                                                      int num_heads, int num_kv_heads, int group, int block_size,
                                                      int max_blocks, int part_size, float scale) {
  constexpr int NW = 4;                 // warps per block
  constexpr int TG = D / 8;             // lanes per key row, 8 dims each
  constexpr int RW = 32 / TG;           // key rows per warp pass
  // KPT: keys per lane per chunk (its K and V loads are in flight together)
  constexpr int WCHUNK = RW * KPT;      // keys per warp chunk
  static_assert(TG >= 1 && TG <= 32 && (TG & (TG - 1)) == 0, "D / 8 must be a power of two <= 32");
  __shared__ float red_acc[NW][MAXG][D];
  __shared__ float red_m[NW][MAXG], red_l[NW][MAXG];

  // NOTE: the kv head is the fastest grid index, so blocks running together read whole K/V slot rows.
  const int item = blockIdx.y, kvh = blockIdx.x, part = blockIdx.z;
  const int tok = token_list ? token_list[item] : item;
  const int ctx = positions[tok] + 1;
  const int begin = part * part_size;
  if (begin >= ctx) return;
  const int end = min(ctx, begin + part_size);
  const int* table = block_tables + (size_t)tok_seq[tok] * max_blocks;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane % TG, row = lane / TG;
  const size_t slot_stride = (size_t)num_kv_heads * D;
  const bf16* kbase = k_cache + (size_t)kvh * D + sub * 8;
  const bf16* vbase = v_cache + (size_t)kvh * D + sub * 8;

  float qr[MAXG][8];
#pragma unroll
  for (int g = 0; g < MAXG; g++) {
    if (g < group) {
      unpack8(*reinterpret_cast<const uint4*>(q + ((size_t)tok * num_heads + kvh * group + g) * D + sub * 8), qr[g]);
#pragma unroll
      for (int e = 0; e < 8; e++) qr[g][e] *= scale;
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++) qr[g][e] = 0.f;
    }
  }
  float m[MAXG], l[MAXG], acc[MAXG][8];
#pragma unroll
  for (int g = 0; g < MAXG; g++) {
    m[g] = -CUDART_INF_F;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; e++) acc[g][e] = 0.f;
  }

  for (int c0 = begin + warp * WCHUNK; c0 < end; c0 += NW * WCHUNK) {
    uint4 kr[KPT], vr[KPT];
#pragma unroll
    for (int k = 0; k < KPT; k++) {
      const int pos = c0 + k * RW + row;
      if (pos < end) {
        const size_t slot = (size_t)table[pos / block_size] * block_size + pos % block_size;
        kr[k] = *reinterpret_cast<const uint4*>(kbase + slot * slot_stride);
        vr[k] = *reinterpret_cast<const uint4*>(vbase + slot * slot_stride);
      } else {
        kr[k] = make_uint4(0, 0, 0, 0);
        vr[k] = make_uint4(0, 0, 0, 0);
      }
    }
    float s[KPT][MAXG];
#pragma unroll
    for (int k = 0; k < KPT; k++) {
      float kf[8];
      unpack8(kr[k], kf);
#pragma unroll
      for (int g = 0; g < MAXG; g++) {
        float acc_s = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc_s += qr[g][e] * kf[e];
        s[k][g] = acc_s;
      }
    }
#pragma unroll
    for (int o = TG / 2; o > 0; o >>= 1)
#pragma unroll
      for (int k = 0; k < KPT; k++)
#pragma unroll
        for (int g = 0; g < MAXG; g++) s[k][g] += __shfl_xor_sync(0xffffffffu, s[k][g], o);
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int k = 0; k < KPT; k++) {
        if (c0 + k * RW + row >= end) s[k][g] = -CUDART_INF_F;
        mx = fmaxf(mx, s[k][g]);
      }
#pragma unroll
      for (int o = TG; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[g], mx);  // finite: the chunk holds a key
      const float alpha = expf(m[g] - m_new);
      m[g] = m_new;
      float psum = 0.f;
#pragma unroll
      for (int k = 0; k < KPT; k++) {
        s[k][g] = expf(s[k][g] - m_new);
        psum += s[k][g];
      }
      l[g] = l[g] * alpha + psum;
#pragma unroll
      for (int e = 0; e < 8; e++) acc[g][e] *= alpha;
    }
#pragma unroll
    for (int k = 0; k < KPT; k++) {
      float vf[8];
      unpack8(vr[k], vf);
#pragma unroll
      for (int g = 0; g < MAXG; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] += s[k][g] * vf[e];
    }
  }
  // Sum the warp's rows (lanes with the same dims), then combine the warps.
#pragma unroll
  for (int o = TG; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
      l[g] += __shfl_xor_sync(0xffffffffu, l[g], o);
#pragma unroll
      for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    }
  }
  if (row == 0) {
#pragma unroll
    for (int g = 0; g < MAXG; g++) {
#pragma unroll
      for (int e = 0; e < 8; e++) red_acc[warp][g][sub * 8 + e] = acc[g][e];
      if (sub == 0) {
        red_m[warp][g] = m[g];
        red_l[warp][g] = l[g];
      }
    }
  }
  __syncthreads();
  merge_warps_and_store<NW, D, false>(&red_m[0][0], &red_l[0][0], &red_acc[0][0][0], MAXG, group, kvh * group, tok, item,
                                      part, num_heads, out, part_out, part_ml);
}

#define PAGED_ATTENTION(D, G)                                                                                        \
  extern "C" __global__ void __launch_bounds__(128) paged_attention_d##D##_g##G(                                    \
      const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* block_tables, const int* tok_seq,          \
      const int* positions, const int* token_list, bf16* out, float* part_out, float* part_ml, int num_heads,       \
      int num_kv_heads, int group, int block_size, int max_blocks, int part_size, float scale) {                     \
    paged_attention<D, G>(q, k_cache, v_cache, block_tables, tok_seq, positions, token_list, out, part_out, part_ml, \
                          num_heads, num_kv_heads, group, block_size, max_blocks, part_size, scale);                \
  }
#define PAGED_ATTENTION_WARPS(D, G, KPT, SUFFIX)                                                                     \
  extern "C" __global__ void __launch_bounds__(128) paged_attention_warps##SUFFIX##_d##D##_g##G(                    \
      const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* block_tables, const int* tok_seq,          \
      const int* positions, const int* token_list, bf16* out, float* part_out, float* part_ml, int num_heads,       \
      int num_kv_heads, int group, int block_size, int max_blocks, int part_size, float scale) {                     \
    paged_attention_warps<D, G, KPT>(q, k_cache, v_cache, block_tables, tok_seq, positions, token_list, out, part_out,   \
                                part_ml, num_heads, num_kv_heads, group, block_size, max_blocks, part_size, scale);  \
  }
#define PAGED_ATTENTION_ALL_G(D)                                                                                     \
  PAGED_ATTENTION(D, 1) PAGED_ATTENTION(D, 2) PAGED_ATTENTION(D, 4) PAGED_ATTENTION(D, 8)                           \
  PAGED_ATTENTION_WARPS(D, 1, 8, ) PAGED_ATTENTION_WARPS(D, 2, 8, ) PAGED_ATTENTION_WARPS(D, 4, 8, )               \
  PAGED_ATTENTION_WARPS(D, 8, 4, )
PAGED_ATTENTION_ALL_G(8)
PAGED_ATTENTION_ALL_G(16)
PAGED_ATTENTION_ALL_G(32)
PAGED_ATTENTION_ALL_G(64)
PAGED_ATTENTION_ALL_G(128)
PAGED_ATTENTION_ALL_G(256)
// Fewer keys in flight per lane, fewer registers, more blocks per SM: compared in the benchmark.
PAGED_ATTENTION_WARPS(128, 4, 4, 4)
PAGED_ATTENTION_WARPS(128, 2, 4, 4)
PAGED_ATTENTION_WARPS(64, 4, 4, 4)

// Combines the partitions of each (token, head) (see combine_partitions_warp). grid: (m, heads / 4), block: 128.
extern "C" __global__ void attention_reduce(const float* __restrict__ part_out, const float* __restrict__ part_ml,
                                            const int* __restrict__ positions, const int* __restrict__ token_list,
                                            bf16* __restrict__ out, int num_heads, int head_dim, int max_parts,
                                            int part_size) {
  const int tok = token_list ? token_list[blockIdx.x] : blockIdx.x;
  const int parts = (positions[tok] + part_size) / part_size;  // ceil((pos + 1) / part_size)
  const int h = blockIdx.y * 4 + (threadIdx.x >> 5);
  if (h < num_heads) combine_partitions_warp(part_out, part_ml, out, blockIdx.x, tok, h, num_heads, head_dim, max_parts, parts);
}
