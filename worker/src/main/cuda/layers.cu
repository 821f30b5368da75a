// The per-token kernels of a Llama-family decoder step (everything but attention and the big GEMMs).
// Shapes in comments: n = tokens in the step, H = hidden size, D = head dim.
#include "common.cuh"

// x[t, :] = emb[tokens[t], :] as fp32 (the residual stream stays fp32).
// grid: n, block: 256.
extern "C" __global__ void embed_rows(const int* __restrict__ tokens, const bf16* __restrict__ emb,
                                      float* __restrict__ x, int hidden) {
  const int t = blockIdx.x;
  const bf16* row = emb + (size_t)tokens[t] * hidden;
  float* out = x + (size_t)t * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[i] = to_float(row[i]);
}

// out[i, :] = bf16(x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w), r = rows[i] (or i when rows is null).
// x: [*, H] fp32, w: [H] fp32, out: [gridDim.x, H] bf16. grid: rows, block: 256.
// Each round issues all of its PER loads a thread before the sums (one memory round trip per round, not
// one per 256 elements: at batch 1 this kernel is pure latency between two GEMVs); the sums still go in
// thread order (j = tid, tid + 256, ...).
extern "C" __global__ void rms_norm(const float* __restrict__ x, const int* __restrict__ rows,
                                    const float* __restrict__ w, bf16* __restrict__ out, int hidden, float eps) {
  constexpr int PER = 16;
  const float* xr = x + (size_t)(rows ? rows[blockIdx.x] : blockIdx.x) * hidden;
  bf16* o = out + (size_t)blockIdx.x * hidden;
  const int tid = threadIdx.x, nt = blockDim.x;
  float ss = 0.f;
  if (hidden <= PER * nt) {  // one round (hidden <= 4,096): x and w loaded together, kept in registers
    float v[PER], g[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
      const int j = i * nt + tid;
      v[i] = j < hidden ? xr[j] : 0.f;
      g[i] = j < hidden ? w[j] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) ss += v[i] * v[i];  // + 0 past the end: the same sum
    const float inv = rsqrtf(block_sum(ss) / hidden + eps);
#pragma unroll
    for (int i = 0; i < PER; i++) {
      const int j = i * nt + tid;
      if (j < hidden) o[j] = to_bf16(v[i] * inv * g[i]);
    }
    return;
  }
  for (int base = 0; base < hidden; base += PER * nt) {
    float v[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
      const int j = base + i * nt + tid;
      v[i] = j < hidden ? xr[j] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) ss += v[i] * v[i];
  }
  const float inv = rsqrtf(block_sum(ss) / hidden + eps);
  for (int base = 0; base < hidden; base += PER * nt) {
    float v[PER], g[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
      const int j = base + i * nt + tid;
      v[i] = j < hidden ? xr[j] : 0.f;
      g[i] = j < hidden ? w[j] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
      const int j = base + i * nt + tid;
      if (j < hidden) o[j] = to_bf16(v[i] * inv * g[i]);
    }
  }
}

// After the fused q/k/v projection: adds the bias (Qwen2), rotates q and k (rotate-half: pair
// (i, i + D/2) turns by positions[t] * inv_freq[i], the angle an fp32 product as transformers
// computes it), writes q as bf16 and k, v into the paged cache at slot slots[t] (none if < 0).
// qkv: [n, (heads + 2 kv_heads) * D] fp32; bias: same width or null; q_out: [n, heads * D];
// k_cache, v_cache: [slots, kv_heads, D] of this layer. grid: (n, blocks per token), block: 128.
extern "C" __global__ void qkv_rope_store(const float* __restrict__ qkv, const float* __restrict__ bias,
                                          const float* __restrict__ inv_freq, const int* __restrict__ positions,
                                          const int* __restrict__ slots, bf16* __restrict__ q_out,
                                          bf16* __restrict__ k_cache, bf16* __restrict__ v_cache, int num_heads,
                                          int num_kv_heads, int head_dim) {
  const int t = blockIdx.x;
  const int half = head_dim / 2, q_dim = num_heads * head_dim, kv_dim = num_kv_heads * head_dim;
  const float* row = qkv + (size_t)t * (q_dim + 2 * kv_dim);
  const float pos = (float)positions[t];
  const int slot = slots[t];
  // q heads then k heads are contiguous in the row, so head h starts at h * head_dim for both.
  const int pairs = (num_heads + num_kv_heads) * half;
  // gridDim.y blocks share a token (decode: one block alone would walk every head).
  const int stride = blockDim.x * gridDim.y, first = blockIdx.y * blockDim.x + threadIdx.x;
  for (int p = first; p < pairs; p += stride) {
    const int h = p / half, i = p % half, a = h * head_dim + i, b = a + half;
    float y1, y2;
    rope_pair(row, bias, inv_freq, pos, h, i, head_dim, y1, y2);
    if (h < num_heads) {
      q_out[(size_t)t * q_dim + a] = to_bf16(y1);
      q_out[(size_t)t * q_dim + b] = to_bf16(y2);
    } else if (slot >= 0) {
      const size_t off = (size_t)slot * kv_dim + (h - num_heads) * head_dim + i;
      k_cache[off] = to_bf16(y1);
      k_cache[off + half] = to_bf16(y2);
    }
  }
  if (slot >= 0) {
    for (int j = first; j < kv_dim; j += stride) {
      const int col = q_dim + kv_dim + j;
      v_cache[(size_t)slot * kv_dim + j] = to_bf16(row[col] + (bias ? bias[col] : 0.f));
    }
  }
}

// out[t, i] = silu(gu[t, i]) * gu[t, ffn + i]. gu: [n, 2 ffn] bf16 (gate then up), out: [n, ffn].
// grid: (blocks over a row's ffn / 8 chunks, n), block: 256. Each thread takes 8 adjacent elements of its
// row (16-byte loads and store; no 64-bit division per element); ffn % 8 != 0 takes the scalar loop.
extern "C" __global__ void silu_mul(const bf16* __restrict__ gu, bf16* __restrict__ out, int n, int ffn) {
  const bf16* g = gu + (size_t)blockIdx.y * 2 * ffn;
  const bf16* u = g + ffn;
  bf16* o = out + (size_t)blockIdx.y * ffn;
  const int stride = gridDim.x * blockDim.x;
  if ((ffn & 7) == 0) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < ffn / 8; c += stride) {
      float gf[8], uf[8];
      unpack8(*reinterpret_cast<const uint4*>(g + 8 * c), gf);
      unpack8(*reinterpret_cast<const uint4*>(u + 8 * c), uf);
      uint4 r;
      __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
      for (int e = 0; e < 4; e++) {
        h[e].x = to_bf16(gf[2 * e] / (1.f + expf(-gf[2 * e])) * uf[2 * e]);
        h[e].y = to_bf16(gf[2 * e + 1] / (1.f + expf(-gf[2 * e + 1])) * uf[2 * e + 1]);
      }
      *reinterpret_cast<uint4*>(o + 8 * c) = r;
    }
    return;
  }
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ffn; i += stride) {
    const float gv = to_float(g[i]), uv = to_float(u[i]);
    o[i] = to_bf16(gv / (1.f + expf(-gv)) * uv);
  }
}

// Copies whole K/V blocks src[p] -> dst[p] in every plane (a plane = one layer's K or V).
// cache: planes of plane_bytes each; a block is block_bytes (a multiple of 16). grid: (pairs, planes).
extern "C" __global__ void copy_blocks(char* __restrict__ cache, const int* __restrict__ src,
                                       const int* __restrict__ dst, long long plane_bytes, int block_bytes) {
  char* plane = cache + (size_t)blockIdx.y * plane_bytes;
  const uint4* from = reinterpret_cast<const uint4*>(plane + (size_t)src[blockIdx.x] * block_bytes);
  uint4* to = reinterpret_cast<uint4*>(plane + (size_t)dst[blockIdx.x] * block_bytes);
  for (int i = threadIdx.x; i < block_bytes / 16; i += blockDim.x) to[i] = from[i];
}

__device__ __forceinline__ float uniform_pm1(unsigned long long seed, unsigned long long i) {
  unsigned long long x = seed * 0x9E3779B97F4A7C15ULL + i;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return (float)(x >> 40) * (2.f / 16777216.f) - 1.f;
}

// p[i] = offset + scale * u_i, u_i uniform in [-1, 1) from a hash of (seed, i): benchmark weights.
// Reads n 16-byte words and writes nothing unless their XOR is `never` (benchmarks: the read-only
// bandwidth ceiling next to which the memory-bound kernels are judged). grid-stride, 4 loads in flight.
extern "C" __global__ void read_only(const uint4* __restrict__ p, long long n, unsigned never, unsigned* sink) {
  unsigned x = 0;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride), d = __ldcs(p + i + 3 * stride);
    x ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = __ldcs(p + i);
    x ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (x == never) *sink = x;
}

extern "C" __global__ void fill_uniform_bf16(bf16* __restrict__ p, long long n, unsigned long long seed, float offset,
                                             float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = to_bf16(offset + scale * uniform_pm1(seed, i));
}

extern "C" __global__ void fill_uniform_f32(float* __restrict__ p, long long n, unsigned long long seed, float offset,
                                            float scale) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = offset + scale * uniform_pm1(seed, i);
}

// Spins one thread for ns nanoseconds of the global timer: holds the stream back while the host queues
// the launches to be timed behind it, so they run back to back (GEMM autotuning). grid 1, block 1.
extern "C" __global__ void spin_ns(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

// ids[r] = argmax(logits[r, :]) (lowest index among equal maxima; 0 when no logit is above -inf).
// grid: (rows, slices), block: 256. Each block scans one slice of its row (a single block per row is a
// long chain of dependent compares on one SM: ~20 us for 128,256 logits at batch 1); with slices > 1 it
// leaves (max, index) in part_v / part_i [rows, slices], and the row's last block to arrive combines the
// slices (counters: one int per row, 0 between launches).
extern "C" __global__ void argmax_rows(const float* __restrict__ logits, int* __restrict__ ids, int vocab,
                                       float* __restrict__ part_v, int* __restrict__ part_i, int* __restrict__ counters) {
  const int row = blockIdx.x, slices = gridDim.y, slice = blockIdx.y;
  const int per = (vocab + slices - 1) / slices;
  const int begin = slice * per, end = min(vocab, begin + per);
  const float* r = logits + (size_t)row * vocab;
  float best = -CUDART_INF_F;
  int arg = 0x7fffffff;
#pragma unroll 8
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float v = r[i];
    if (v > best) {
      best = v;
      arg = i;
    }
  }
  block_argmax(best, arg);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) {
    if (slices == 1) {
      ids[row] = arg == 0x7fffffff ? 0 : arg;
    } else {
      part_v[row * slices + slice] = best;
      part_i[row * slices + slice] = arg;
    }
  }
  if (slices > 1 && last_block_to_arrive(counters + row, slices) && warp == 0) {
    best = -CUDART_INF_F;
    arg = 0x7fffffff;
    for (int j = lane; j < slices; j += 32) {
      const float v = __ldcg(part_v + row * slices + j);
      const int a = __ldcg(part_i + row * slices + j);
      if (v > best || (v == best && a < arg)) {
        best = v;
        arg = a;
      }
    }
    warp_argmax(best, arg);
    if (lane == 0) ids[row] = arg == 0x7fffffff ? 0 : arg;
  }
}

// Skinny GEMM for decode (few tokens): y[t, o] = sum_k w[o, k] * x[t, k], t < n <= MAXN.
// w: [out, K] bf16 row-major (a Hugging Face Linear weight), x: [n, K] bf16, K a multiple of 8.
// mode 0: y bf16 [n, out]; 1: y fp32 [n, out]; 2: y fp32 [n, out] += (the residual add).
// split (1, 2, 4 or 8) warps per output row, 16-byte loads; every weight byte is read once.
// grid: ceil(out * split / 8), block: 256.
template <int MAXN>
__device__ __forceinline__ void skinny_gemm(const bf16* __restrict__ w, const bf16* __restrict__ x, void* __restrict__ y,
                                            int n, int out, int K, int mode, int split) {
  // split warps share a row (each a strided share of K), so small matrices still fill the GPU.
  __shared__ float partial[8][MAXN];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int o = blockIdx.x * (8 / split) + warp / split, share = warp % split;
  const uint4* wr = reinterpret_cast<const uint4*>(w + (size_t)(o < out ? o : 0) * K);
  const int chunks = K / 8;
  float acc[MAXN];
#pragma unroll
  for (int t = 0; t < MAXN; t++) acc[t] = 0.f;
  if (o < out) {
#pragma unroll 4
    for (int c = share * 32 + lane; c < chunks; c += 32 * split) {
      float wf[8];
      unpack8(__ldg(wr + c), wf);
#pragma unroll
      for (int t = 0; t < MAXN; t++) {
        if (t < n) {
          float xf[8];
          unpack8(__ldg(reinterpret_cast<const uint4*>(x + (size_t)t * K) + c), xf);
#pragma unroll
          for (int e = 0; e < 8; e++) acc[t] += wf[e] * xf[e];
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < MAXN; t++) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) partial[warp][t] = s;
  }
  __syncthreads();
  if (share == 0 && lane < n && o < out) {
    const int t = lane;
    float s = 0.f;
    for (int i = 0; i < split; i++) s += partial[warp + i][t];
    const size_t idx = (size_t)t * out + o;
    if (mode == 0) reinterpret_cast<bf16*>(y)[idx] = to_bf16(s);
    else if (mode == 1) reinterpret_cast<float*>(y)[idx] = s;
    else reinterpret_cast<float*>(y)[idx] += s;
  }
}

#define SKINNY(N)                                                                                              \
  extern "C" __global__ void __launch_bounds__(256) skinny_gemm_n##N(const bf16* w, const bf16* x, void* y, int n, \
                                                                     int out, int K, int mode, int split) {    \
    skinny_gemm<N>(w, x, y, n, out, K, mode, split);                                                           \
  }
SKINNY(1)
SKINNY(2)
SKINNY(4)
SKINNY(8)

// Decode fusion for one token (batch 1: every kernel boundary is a drain of the GPU): the weight is the
// fused [gate; up] matrix ([2 ffn, K]); a block's warps take gate row o and up row ffn + o together, and
// the epilogue writes act[o] = bf16(silu(bf16 g) * bf16 u) as silu_mul would, instead of writing gate/up
// and launching silu_mul; per (row, split share) the same chunk order as skinny_gemm<1>, so the same bits.
// x: the normed bf16 input [K]. grid: up to ceil(ffn * 2 split / 8) blocks, which stride over the row
// groups; block: 256.
extern "C" __global__ void __launch_bounds__(256) skinny_gate_up_silu_n1(const bf16* __restrict__ w,
                                                                         const bf16* __restrict__ x,
                                                                         bf16* __restrict__ act, int ffn, int K,
                                                                         int split) {
  __shared__ float partial[8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // 4 / split outputs per block, each 2 split warps: the gate row's, then the up row's.
  const int group = 2 * split;
  const int member = warp % group, share = member % split;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const int chunks = K / 8;
  const int groups = (ffn + 8 / group - 1) / (8 / group);
  for (int g0 = blockIdx.x; g0 < groups; g0 += gridDim.x) {
    const int slot = g0 * (8 / group) + warp / group;
    const int o = member < split ? slot : ffn + slot;
    const bool live = slot < ffn;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (size_t)(live ? o : 0) * K);
    float acc = 0.f;
    if (live) {
#pragma unroll 4
      for (int c = share * 32 + lane; c < chunks; c += 32 * split) {
        float wf[8], xf[8];
        unpack8(__ldg(wr + c), wf);
        unpack8(__ldg(xv + c), xf);
#pragma unroll
        for (int e = 0; e < 8; e++) acc += wf[e] * xf[e];
      }
    }
    const float sum = warp_sum(acc);
    if (lane == 0) partial[warp] = sum;
    __syncthreads();
    if (member == 0 && lane == 0 && live) {
      float a = 0.f, u = 0.f;
      for (int i = 0; i < split; i++) a += partial[warp + i];
      for (int i = 0; i < split; i++) u += partial[warp + split + i];
      const float g = to_float(to_bf16(a)), up = to_float(to_bf16(u));
      act[slot] = to_bf16(g / (1.f + expf(-g)) * up);
    }
    __syncthreads();  // partial is reused by the next group
  }
}
