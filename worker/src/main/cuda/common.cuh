// Shared helpers for kvass's kernels. bf16 storage, fp32 arithmetic everywhere.
#pragma once
#include <cuda_bf16.h>
#include <math_constants.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ bf16 to_bf16(float v) { return __float2bfloat16(v); }  // round to nearest even

// 8 bf16 (16 bytes) -> 8 floats.
__device__ __forceinline__ void unpack8(const uint4& raw, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// RoPE (rotate-half) of pair (i, i + head_dim/2) of head `head` in an fp32 qkv row (q heads, then k heads,
// head h at h * head_dim), after the bias (Qwen2; null for none): the pair turns by pos * inv_freq[i], the
// angle an fp32 product as transformers computes it. qkv_rope_store and the decode attention kernel both
// rotate with this, so their results are the same bits.
__device__ __forceinline__ void rope_pair(const float* __restrict__ row, const float* __restrict__ bias,
                                          const float* __restrict__ inv_freq, float pos, int head, int i,
                                          int head_dim, float& y1, float& y2) {
  const int a = head * head_dim + i, b = a + head_dim / 2;
  float x1 = row[a], x2 = row[b];
  if (bias) {
    x1 += bias[a];
    x2 += bias[b];
  }
  float s, c;
  sincosf(pos * inv_freq[i], &s, &c);
  y1 = x1 * c - x2 * s;
  y2 = x2 * c + x1 * s;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// NOTE: uses one shared array; a second call in the same kernel needs a __syncthreads() before it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? partial[lane] : 0.f;
  return warp_sum(v);
}

// Whether this block is the last of `arrivals` blocks to get here (every thread of it gets the answer).
// Call with all threads, after the block's global writes; the last block may then read what the others
// wrote, through L2 (__ldcg: its L1 may hold stale lines). The counter must be 0 before the first
// arrival; the last block sets it back to 0, so it is ready for the next launch (and graph replays).
__device__ __forceinline__ bool last_block_to_arrive(int* counter, int arrivals) {
  __shared__ int last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1) == arrivals - 1;
    if (last) atomicExch(counter, 0);
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

// Split-K (flash-decoding): combines the `parts` partitions of head h of query item `item` (token tok)
// into out, weights l_p * exp(m_p - M), M the largest max; one warp per head. A lane computes the weights
// of 32 partitions at a time and the warp shares them by shuffles, so the pass over part_out has only
// independent loads (4 dims a lane). part_out: [m, heads, max_parts, D] fp32, part_ml: [m, heads,
// max_parts, 2] (max in natural-log units, sum), read through L2 (other blocks of the same kernel may
// have written them). D % 4 == 0.
__device__ __forceinline__ void combine_partitions_warp(const float* __restrict__ part_out,
                                                        const float* __restrict__ part_ml, bf16* __restrict__ out,
                                                        int item, int tok, int h, int num_heads, int head_dim,
                                                        int max_parts, int parts) {
  const int lane = threadIdx.x & 31;
  const size_t base = ((size_t)item * num_heads + h) * max_parts;
  float M = -CUDART_INF_F;
  for (int p = lane; p < parts; p += 32) M = fmaxf(M, __ldcg(part_ml + (base + p) * 2));
  M = warp_max(M);
  float L = 0.f;
  for (int d0 = 0; d0 < head_dim; d0 += 128) {
    const int d = d0 + 4 * lane;
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int p0 = 0; p0 < parts; p0 += 32) {
      const int p = p0 + lane;
      const float wl = p < parts ? __ldcg(part_ml + (base + p) * 2 + 1) * expf(__ldcg(part_ml + (base + p) * 2) - M) : 0.f;
      if (d0 == 0) L += wl;
      const int n = min(32, parts - p0);
#pragma unroll 8
      for (int j = 0; j < n; j++) {
        const float wgt = __shfl_sync(0xffffffffu, wl, j);
        if (d < head_dim) {
          const float4 o = __ldcg(reinterpret_cast<const float4*>(part_out + (base + p0 + j) * head_dim + d));
          s.x += wgt * o.x;
          s.y += wgt * o.y;
          s.z += wgt * o.z;
          s.w += wgt * o.w;
        }
      }
    }
    const float inv_l = 1.f / warp_sum(L);
    if (d < head_dim) {
      bf16* dst = out + ((size_t)tok * num_heads + h) * head_dim + d;
      dst[0] = to_bf16(s.x * inv_l);
      dst[1] = to_bf16(s.y * inv_l);
      dst[2] = to_bf16(s.z * inv_l);
      dst[3] = to_bf16(s.w * inv_l);
    }
  }
}

// Warp-wide argmax: every lane ends with the largest value and its index (ties: the lowest index;
// an index of 0x7fffffff marks "none", so a lane that saw nothing never wins).
__device__ __forceinline__ void warp_argmax(float& best, int& arg) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ov > best || (ov == best && oa < arg)) {
      best = ov;
      arg = oa;
    }
  }
}

// Argmax over the block (blockDim.x a multiple of 32): every thread gets the largest value and its index,
// ties and "none" as warp_argmax. NOTE: uses shared arrays; a second call in the same kernel needs a
// __syncthreads() before it (as block_sum).
__device__ __forceinline__ void block_argmax(float& best, int& arg) {
  __shared__ float values[32];
  __shared__ int indices[32];
  warp_argmax(best, arg);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = arg;
  }
  __syncthreads();
  best = lane < warps ? values[lane] : -CUDART_INF_F;
  arg = lane < warps ? indices[lane] : 0x7fffffff;
  warp_argmax(best, arg);
}

// The end of a paged-attention block whose NW warps each hold, for every query head g < group of a
// K/V head, an online-softmax partial: running max red_m[w * rows + g] (log2 units when BASE2), sum
// red_l[w * rows + g] and unnormalised output red_o[(w * rows + g) * D + d]. Merges the warps and
// stores O / L for heads head0 + g of token tok: as bf16 to out when the block covers all keys
// (gridDim.z == 1), else to the split-K buffers of (item, part): part_out, and part_ml = [M in
// natural-log units, L] for the reducer. Call after a __syncthreads() that publishes the partials.
template <int NW, int D, bool BASE2>
__device__ __forceinline__ void merge_warps_and_store(const float* red_m, const float* red_l, const float* red_o, int rows,
                                                      int group, int head0, int tok, int item, int part, int num_heads,
                                                      bf16* out, float* part_out, float* part_ml) {
  for (int i = threadIdx.x; i < group * D; i += NW * 32) {
    const int g = i / D, d = i % D;
    float M = -CUDART_INF_F;
#pragma unroll
    for (int w = 0; w < NW; w++) M = fmaxf(M, red_m[w * rows + g]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < NW; w++) {
      const float x = red_m[w * rows + g] - M;
      const float f = BASE2 ? exp2f(x) : expf(x);  // 0 for a warp that saw no keys
      L += red_l[w * rows + g] * f;
      O += red_o[(w * rows + g) * D + d] * f;
    }
    const int h = head0 + g;
    if (gridDim.z == 1) {
      out[((size_t)tok * num_heads + h) * D + d] = to_bf16(O / L);
    } else {
      const size_t idx = ((size_t)item * num_heads + h) * gridDim.z + part;
      part_out[idx * D + d] = O / L;
      if (d == 0) {
        part_ml[idx * 2] = BASE2 ? M * 0.6931471805599453f : M;  // log2 units times ln 2
        part_ml[idx * 2 + 1] = L;
      }
    }
  }
}
