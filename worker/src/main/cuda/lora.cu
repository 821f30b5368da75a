// Batched mixed-adapter LoRA, in the manner of Punica's BGMV: in one step every token gets its own
// adapter's low-rank update on a projection, y[t] += scale * B (A x[t]), as two kernels per group
// of projections that share an input (q/k/v, gate/up, o, down): a shrink (u = scale * A x, rank
// values per token and projection) and an expand (y += B u).
//
// Adapters are found through a descriptor table on the device, [slot][layer][target], and each
// token's slot through the step inputs; slot 0 is the base model. So a captured CUDA graph serves
// any mix of adapters, and loading an adapter into a slot only rewrites its descriptors.
#include "common.cuh"

// One adapted projection of one adapter in one layer (CudaLora writes these, 32 bytes each).
struct LoraDesc {
  const bf16* a;  // [rank, in]
  const bf16* b;  // [out, rank]
  int rank;       // 0: the adapter leaves this projection alone
  float scale;    // alpha / rank (or rsLoRA's alpha / sqrt(rank))
  long long pad;
};

#define LORA_TARGETS 7
#define SHRINK_WARPS 4

__device__ __forceinline__ const LoraDesc* lora_desc(const LoraDesc* table, int slot, int num_layers, int layer,
                                                     int target) {
  return table + ((size_t)slot * num_layers + layer) * LORA_TARGETS + target;
}

// u[t, j, r] = scale * dot(A[r, :], x[t, :]) for the projections j = 0..targets-1 of a group
// (first_target + j in the table), each warp one rank r. Tokens of slot 0, projections the
// adapter leaves alone and ranks past the adapter's are not written (expand does not read them).
// x: [n, in] bf16, u: [n, targets, max_rank] fp32.
// grid: (n, targets, ceil(max_rank / SHRINK_WARPS)), block: 32 * SHRINK_WARPS.
extern "C" __global__ void __launch_bounds__(32 * SHRINK_WARPS)
    lora_shrink(const int* __restrict__ token_slot, const LoraDesc* __restrict__ table, int num_layers, int layer,
                int first_target, const bf16* __restrict__ x, int in, float* __restrict__ u, int max_rank) {
  const int t = blockIdx.x, j = blockIdx.y;
  const int slot = token_slot[t];
  if (slot == 0) return;
  const LoraDesc* d = lora_desc(table, slot, num_layers, layer, first_target + j);
  const int r = blockIdx.z * SHRINK_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (r >= d->rank) return;
  const bf16* ar = d->a + (size_t)r * in;
  const bf16* xr = x + (size_t)t * in;
  float s = 0.f;
  if ((in & 7) == 0) {
    // 16-byte loads, two in flight per lane per iteration.
    int i = lane * 8;
    for (; i + 256 < in; i += 512) {
      const uint4 a0 = *reinterpret_cast<const uint4*>(ar + i), x0 = *reinterpret_cast<const uint4*>(xr + i);
      const uint4 a1 = *reinterpret_cast<const uint4*>(ar + i + 256), x1 = *reinterpret_cast<const uint4*>(xr + i + 256);
      float af[8], xf[8];
      unpack8(a0, af);
      unpack8(x0, xf);
#pragma unroll
      for (int k = 0; k < 8; k++) s += af[k] * xf[k];
      unpack8(a1, af);
      unpack8(x1, xf);
#pragma unroll
      for (int k = 0; k < 8; k++) s += af[k] * xf[k];
    }
    if (i < in) {
      const uint4 a0 = *reinterpret_cast<const uint4*>(ar + i), x0 = *reinterpret_cast<const uint4*>(xr + i);
      float af[8], xf[8];
      unpack8(a0, af);
      unpack8(x0, xf);
#pragma unroll
      for (int k = 0; k < 8; k++) s += af[k] * xf[k];
    }
  } else {
    for (int i = lane; i < in; i += 32) s += to_float(ar[i]) * to_float(xr[i]);
  }
  s = warp_sum(s);
  if (lane == 0) u[((size_t)t * gridDim.y + j) * max_rank + r] = s * d->scale;
}

// y[t, c] += dot(B[o, :], u[t, j, :]) where column c of the group's output is row o of projection j:
// the projections' outputs sit side by side in y (q | k | v, gate | up), widths out0, out1, out2.
// y: [n, y_stride] fp32 (accumulate) or bf16 (y_bf16: read, add, round). One thread per column.
// grid: (ceil(total / 128), n), block: 128.
extern "C" __global__ void lora_expand(const int* __restrict__ token_slot, const LoraDesc* __restrict__ table,
                                       int num_layers, int layer, int first_target, int targets,
                                       const float* __restrict__ u, int max_rank, void* __restrict__ y, int y_stride,
                                       int y_bf16, int out0, int out1, int out2) {
  const int t = blockIdx.y;
  const int slot = token_slot[t];
  if (slot == 0) return;
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  int j = 0, o = c;
  if (o >= out0) {
    o -= out0;
    j = 1;
    if (o >= out1) {
      o -= out1;
      j = 2;
      if (o >= out2) return;
    }
  }
  if (j >= targets) return;
  const LoraDesc* d = lora_desc(table, slot, num_layers, layer, first_target + j);
  const int rank = d->rank;
  if (rank == 0) return;
  const float* ut = u + ((size_t)t * targets + j) * max_rank;
  const bf16* br = d->b + (size_t)o * rank;
  float s = 0.f;
  for (int r = 0; r < rank; r++) s += to_float(br[r]) * ut[r];
  const size_t at = (size_t)t * y_stride + c;
  if (y_bf16) {
    bf16* yb = reinterpret_cast<bf16*>(y);
    yb[at] = to_bf16(to_float(yb[at]) + s);
  } else {
    reinterpret_cast<float*>(y)[at] += s;
  }
}
