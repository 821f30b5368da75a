// Sampling on the GPU: one block per sampled row, so only token ids cross to the host.
//
// vLLM's order, as the CPU sampler (TopKTopPSampler): temperature -> min_p -> top_k -> top_p -> draw.
//  - max and argmax of the row (greedy rows and top_k = 1 stop here; ties: lowest id);
//  - candidates: finite logits >= the min_p cutoff (max + T ln min_p);
//  - top_k: the k-th largest candidate found by radix selection on the logit's order-preserving bit
//    pattern (8 passes of 4 bits, per-thread register histograms, no atomics); ties at the k-th value
//    keep the lowest ids, so exactly k survive;
//  - top_p: the same selection on probability mass (relative to top_k's survivors): keep the smallest
//    most-likely prefix whose mass reaches p (ties: lowest ids first);
//  - draw: inverse CDF over the survivors in id order with a uniform from Philox4x32-10 keyed by the
//    sequence's seed, counter = the output position of the token. Nothing depends on the batch: the
//    same row, seed and position give the same token whatever else is in the launch.
//
// Probability mass is fixed point (exp((l - max) / T) * 2^40 as a 64-bit integer), so every sum is
// exact and independent of the summation order: thresholds and draws are deterministic. Tokens
// lighter than 2^-40 of the most likely one get weight 0 (never drawn).
//
// NOTE: the random stream differs from the CPU sampler's (SplittableRandom per sequence); a seeded
// request is reproducible on the GPU and on the CPU, but the two give different tokens.
#include "common.cuh"

struct SampleRow {
  float temperature;  // < 1e-5: greedy
  float top_p;        // >= 1: off
  float min_p;        // <= 0: off
  int top_k;          // <= 0: off
  unsigned long long seed;
  int position;       // output index of the token drawn: the RNG counter
  int row;            // logits row
};
static_assert(sizeof(SampleRow) == 32, "SampleRow is 32 bytes (CudaBackend writes it)");

constexpr int ST = 512;
constexpr float FIX_ONE = 1099511627776.f;  // 2^40
typedef unsigned long long u64;

// Larger logit -> larger key; -0 and +0 are one value.
__device__ __forceinline__ unsigned rank_key(float f) {
  const unsigned b = f == 0.f ? 0u : __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(unsigned key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

__device__ __forceinline__ u64 fixed_weight(float l, float m, float inv_t) {
  const float w = l == m ? 1.f : expf((l - m) * inv_t);
  return (u64)(w * FIX_ONE);
}

// Philox4x32-10 (Salmon et al. 2011), one block of output -> a double in [0, 1) from 53 bits.
__device__ __forceinline__ double philox_uniform(u64 seed, unsigned counter) {
  unsigned c0 = counter, c1 = 0x6b766173u, c2 = 0u, c3 = 0u;  // "kvas"
  unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  const u64 bits = ((u64)(c0 >> 5) << 26) | (u64)(c1 >> 6);
  return (double)bits * (1.0 / 9007199254740992.0);
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Calls f(value, id) for every logit of the row, each thread a coalesced share in increasing id order:
// 16-byte loads, two in flight per thread (one 4-byte load at a time leaves the pass latency-bound).
template <class F>
__device__ __forceinline__ void for_row(const float* __restrict__ row, int vocab, F&& f) {
  if ((vocab & 3) == 0) {  // then every row starts 16-byte aligned (the logits buffer is)
    const float4* r4 = reinterpret_cast<const float4*>(row);
    const int n4 = vocab >> 2;
    int i = threadIdx.x;
    for (; i + ST < n4; i += 2 * ST) {
      const float4 a = __ldg(r4 + i), b = __ldg(r4 + i + ST);
      f(a.x, 4 * i);
      f(a.y, 4 * i + 1);
      f(a.z, 4 * i + 2);
      f(a.w, 4 * i + 3);
      const int j = 4 * (i + ST);
      f(b.x, j);
      f(b.y, j + 1);
      f(b.z, j + 2);
      f(b.w, j + 3);
    }
    if (i < n4) {
      const float4 a = __ldg(r4 + i);
      f(a.x, 4 * i);
      f(a.y, 4 * i + 1);
      f(a.z, 4 * i + 2);
      f(a.w, 4 * i + 3);
    }
  } else {
    for (int i = threadIdx.x; i < vocab; i += ST) f(__ldg(row + i), i);
  }
}

// Max and argmax of the row over the block (NaN never wins; ties: the lowest id; 0x7fffffff: no
// rankable logit); every thread gets them. Uses block_argmax's shared arrays.
__device__ __forceinline__ void row_argmax(const float* __restrict__ row, int vocab, float& best, int& arg) {
  best = -CUDART_INF_F;
  arg = 0x7fffffff;
  for_row(row, vocab, [&](float v, int i) {
    if (v > best) {
      best = v;
      arg = i;
    }
  });
  block_argmax(best, arg);
}

struct Filters {
  float m, inv_t, cut;
  unsigned k_key;  // top_k: keep key > k_key, or key == k_key and id < k_limit (off: k_key 0, limit max)
  int k_limit;
  unsigned p_key;  // top_p: the same
  int p_limit;

  __device__ __forceinline__ bool base(float l) const { return l > -CUDART_INF_F && l >= cut; }
  __device__ __forceinline__ bool top_k(unsigned key, int i) const { return key > k_key || (key == k_key && i < k_limit); }
  __device__ __forceinline__ bool top_p(unsigned key, int i) const { return key > p_key || (key == p_key && i < p_limit); }
};

// Stage 0: after min_p (base). Stage 1: after top_k. Stage 2: after top_p.
template <int STAGE>
__device__ __forceinline__ bool keep(const Filters& f, float l, int i) {
  if (!f.base(l)) return false;
  const unsigned key = rank_key(l);
  if (STAGE >= 1 && !f.top_k(key, i)) return false;
  if (STAGE >= 2 && !f.top_p(key, i)) return false;
  return true;
}

// Radix selection over the candidates of stage STAGE (MASS: weighted by fixed-point probability,
// else counted). Finds the key K with amount(key > K) < need <= amount(key >= K). `need` is `need_abs`,
// or ceil(fraction * total) when fraction > 0. Returns false (nothing to cut) when total <= need_abs
// (counting). Gives K, need - amount(key > K) (>= 1: what the ties at K must supply) and amount(key == K).
template <int STAGE, bool MASS>
__device__ bool radix_select(const float* __restrict__ row, int vocab, const Filters& f, u64 need_abs, float fraction,
                             unsigned* out_key, u64* out_rem, u64* out_at) {
  __shared__ u64 red[32][16];
  __shared__ u64 s_need, s_at;
  __shared__ unsigned s_prefix;
  __shared__ int s_stop;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  unsigned prefix = 0, mask = 0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    u64 acc[16];
#pragma unroll
    for (int d = 0; d < 16; d++) acc[d] = 0;
    for_row(row, vocab, [&](float l, int i) {
      if (!keep<STAGE>(f, l, i)) return;
      const unsigned key = rank_key(l);
      if ((key & mask) != prefix) return;
      const unsigned digit = (key >> shift) & 15u;
      const u64 amt = MASS ? fixed_weight(l, f.m, f.inv_t) : 1ull;
#pragma unroll
      for (int d = 0; d < 16; d++) acc[d] += digit == (unsigned)d ? amt : 0ull;
    });
#pragma unroll
    for (int d = 0; d < 16; d++) {
      const u64 s = warp_sum_u64(acc[d]);
      if (lane == 0) red[warp][d] = s;
    }
    __syncthreads();
    if (tid == 0) {
      u64 hist[16], total = 0;
      for (int d = 0; d < 16; d++) {
        u64 s = 0;
        for (int w = 0; w < ST / 32; w++) s += red[w][d];
        hist[d] = s;
        total += s;
      }
      if (shift == 28) {
        s_stop = 0;
        if (fraction > 0.f) {
          double want = ceil((double)fraction * (double)total);
          u64 n = want < 1.0 ? 1ull : (u64)want;
          s_need = n > total ? total : n;
        } else {
          s_need = need_abs;
          if (total <= need_abs) s_stop = 1;
        }
        s_prefix = 0;
      }
      if (!s_stop) {
        u64 cum = 0;
        int b = 15;
        for (; b > 0; b--) {
          if (cum + hist[b] >= s_need) break;
          cum += hist[b];
        }
        s_need -= cum;
        s_prefix |= (unsigned)b << shift;
        s_at = hist[b];
      }
    }
    __syncthreads();
    if (s_stop) return false;
    prefix = s_prefix;
    mask |= 15u << shift;
  }
  *out_key = s_prefix;
  *out_rem = s_need;
  *out_at = s_at;
  __syncthreads();  // the shared results are read before the next selection overwrites them
  return true;
}

// The id just past the n-th (1-based, id order) candidate of stage STAGE whose key is `key`.
template <int STAGE>
__device__ int nth_limit(const float* __restrict__ row, int vocab, const Filters& f, unsigned key, int n) {
  __shared__ int counts[32];
  __shared__ int s_result;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) s_result = 0x7fffffff;
  __syncthreads();
  int seen = 0;
  for (int base = 0; base < vocab; base += ST) {
    const int i = base + tid;
    bool hit = false;
    if (i < vocab) {
      const float l = row[i];
      hit = keep<STAGE>(f, l, i) && rank_key(l) == key;
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) counts[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < ST / 32; w++) {
      const int c = counts[w];
      before += w < warp ? c : 0;
      total += c;
    }
    if (hit && seen + before + __popc(ballot & ((1u << lane) - 1u)) + 1 == n) s_result = i + 1;
    __syncthreads();
    seen += total;
    if (seen >= n) break;
  }
  return s_result;
}

// ids[b] = the token sampled for rows[b]; -1 when every logit of the row is -inf or NaN.
// grid: rows, block: 512.
extern "C" __global__ void __launch_bounds__(ST) sample_rows(const float* __restrict__ logits,
                                                            const SampleRow* __restrict__ rows, int* __restrict__ ids,
                                                            int vocab) {
  const SampleRow p = rows[blockIdx.x];
  const float* row = logits + (size_t)p.row * vocab;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  __shared__ u64 s_wsum[32];
  __shared__ int s_token;

  float best;
  int arg;
  row_argmax(row, vocab, best, arg);
  if (arg == 0x7fffffff) {
    if (tid == 0) ids[blockIdx.x] = -1;
    return;
  }
  if (p.temperature < 1e-5f || p.top_k == 1) {
    if (tid == 0) ids[blockIdx.x] = arg;
    return;
  }

  Filters f;
  f.m = best;
  f.inv_t = 1.f / p.temperature;
  f.cut = p.min_p > 0.f ? best + p.temperature * logf(p.min_p) : -CUDART_INF_F;
  f.k_key = 0;
  f.k_limit = 0x7fffffff;
  f.p_key = 0;
  f.p_limit = 0x7fffffff;

  if (p.top_k > 0) {
    unsigned key;
    u64 rem, at;
    if (radix_select<0, false>(row, vocab, f, (u64)p.top_k, 0.f, &key, &rem, &at)) {
      f.k_key = key;
      f.k_limit = rem >= at ? 0x7fffffff : nth_limit<0>(row, vocab, f, key, (int)rem);
    }
  }
  if (p.top_p < 1.f) {
    unsigned key;
    u64 rem, at;
    if (radix_select<1, true>(row, vocab, f, 0ull, p.top_p, &key, &rem, &at)) {
      // Every token at the threshold weighs w; keep ties (lowest ids first) until the mass reaches p.
      const u64 w = fixed_weight(key_value(key), f.m, f.inv_t);
      const u64 count = w == 0 ? 0 : at / w, n = w == 0 ? 0 : (rem + w - 1) / w;
      f.p_key = key;
      f.p_limit = n >= count ? 0x7fffffff : nth_limit<1>(row, vocab, f, key, (int)n);
    }
  }

  // Draw: thread t owns the contiguous ids [t * slice, (t + 1) * slice); exact integer sums, an
  // exclusive scan over the threads, and the one thread whose share holds the target walks it.
  constexpr int NW = ST / 32;
  const int slice = (((vocab + ST - 1) / ST) + 3) & ~3;
  const int lo = min(vocab, tid * slice), hi = min(vocab, lo + slice);
  auto weight = [&](float l, int i) -> u64 { return keep<2>(f, l, i) ? fixed_weight(l, f.m, f.inv_t) : 0ull; };
  u64 mine = 0;
  if ((vocab & 3) == 0) {
    for (int i = lo; i < hi; i += 4) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(row + i));
      mine += weight(a.x, i) + weight(a.y, i + 1) + weight(a.z, i + 2) + weight(a.w, i + 3);
    }
  } else {
    for (int i = lo; i < hi; i++) mine += weight(__ldg(row + i), i);
  }
  u64 incl = mine;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  if (lane == 31) s_wsum[warp] = incl;
  if (tid == 0) s_token = arg;
  __syncthreads();
  u64 total = 0, before = 0;
  for (int w = 0; w < NW; w++) {
    const u64 v = s_wsum[w];
    before += w < warp ? v : 0ull;
    total += v;
  }
  const double u = philox_uniform(p.seed, (unsigned)p.position);
  u64 target = (u64)(u * (double)total);
  if (target >= total) target = total - 1;
  const u64 excl = before + incl - mine;
  if (mine > 0 && target >= excl && target < excl + mine) {
    u64 cum = excl;
    for (int i = lo; i < hi; i++) {
      cum += weight(__ldg(row + i), i);
      if (cum > target) {
        s_token = i;
        break;
      }
    }
  }
  __syncthreads();
  if (tid == 0) ids[blockIdx.x] = s_token;
}

// Logprobs of sampled rows, so that only they (not whole logits rows) go back to the host: for request j,
// descriptor requests[2j] (its logits row and, in ids, the token drawn) and n = requests[2j + 1] <= 20,
// out[j] = {logprob of the drawn token, the count c <= n of listed tokens (int bits; fewer than n when the
// row has fewer rankable logits), then c pairs (token id as int bits, logprob)}, the raw model
// output's log-softmax as the CPU's Logprobs computes it: a float max, then the sum of exp(l - max) in
// double; the top n ranked by (logit descending, id ascending), NaN never listed. grid: requests, block: 512.
constexpr int LOGPROB_WORDS = 2 + 2 * 20;

extern "C" __global__ void __launch_bounds__(ST) logprob_rows(const float* __restrict__ logits,
                                                             const SampleRow* __restrict__ rows,
                                                             const int* __restrict__ ids,
                                                             const int* __restrict__ requests, int vocab,
                                                             float* __restrict__ out) {
  const int desc = requests[2 * blockIdx.x], n = requests[2 * blockIdx.x + 1];
  const float* row = logits + (size_t)rows[desc].row * vocab;
  float* o = out + (size_t)blockIdx.x * LOGPROB_WORDS;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  __shared__ double s_sum[32];

  float m;
  int at;
  row_argmax(row, vocab, m, at);
  double sum = 0.0;
  if (m > -CUDART_INF_F) for_row(row, vocab, [&](float v, int) { sum += exp((double)v - (double)m); });
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, d);
  if (lane == 0) s_sum[warp] = sum;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < ST / 32; w++) total += s_sum[w];
  const double lse = m > -CUDART_INF_F ? (double)m + log(total) : (double)m;
  if (tid == 0) o[0] = (float)((double)row[ids[desc]] - lse);
  int listed = 0;

  // The top n, one block-wide selection each: the best entry ranked after the previous pick.
  float prev_v = CUDART_INF_F;
  int prev_i = -1;
  for (int k = 0; k < n; k++) {
    float best = -CUDART_INF_F;
    int arg = 0x7fffffff;
    for_row(row, vocab, [&](float v, int i) {
      const bool after = v < prev_v || (v == prev_v && i > prev_i);  // NaN: never
      if (after && (v > best || (v == best && i < arg))) {
        best = v;
        arg = i;
      }
    });
    __syncthreads();  // block_argmax's arrays of the previous round are read
    block_argmax(best, arg);
    if (arg == 0x7fffffff) break;  // fewer than n rankable logits
    if (tid == 0) {
      o[2 + 2 * k] = __int_as_float(arg);
      o[3 + 2 * k] = (float)((double)best - lse);
    }
    listed = k + 1;
    prev_v = best;
    prev_i = arg;
  }
  if (tid == 0) o[1] = __int_as_float(listed);
}

// Structured outputs: logits[rows[b]][id] = -inf for every id whose bit is clear in masks[b] (bit id % 32 of
// word id / 32; a grammar's token bitmask, as xgrammar's apply_token_bitmask_inplace). Runs before
// sample_rows, on the device's logits, so constrained rows never copy their logits to the host.
// grid: (masked rows, ceil(words / 256)), block: 256; one thread per 32-token word.
extern "C" __global__ void __launch_bounds__(256) apply_token_bitmask(float* __restrict__ logits,
                                                                     const int* __restrict__ rows,
                                                                     const unsigned* __restrict__ masks, int words,
                                                                     int vocab) {
  const int w = blockIdx.y * blockDim.x + threadIdx.x;
  if (w >= words) return;
  const unsigned word = masks[(size_t)blockIdx.x * words + w];
  if (word == 0xffffffffu) return;
  float* row = logits + (size_t)rows[blockIdx.x] * vocab;
  const int base = w * 32;
#pragma unroll 4
  for (int bit = 0; bit < 32; bit++) {
    const int id = base + bit;
    if (id < vocab && !((word >> bit) & 1u)) row[id] = -CUDART_INF_F;
  }
}
