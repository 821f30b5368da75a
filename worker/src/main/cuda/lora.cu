// Batched mixed-adapter LoRA, in the manner of Punica's SGMV: in one step every token gets its own
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
#define SHRINK_THREADS 256

__device__ __forceinline__ const LoraDesc* lora_desc(const LoraDesc* table, int slot, int num_layers, int layer,
                                                     int target) {
  return table + ((size_t)slot * num_layers + layer) * LORA_TARGETS + target;
}

// A step's adapted tokens, sorted by slot, are cut into tiles of up to LORA_TILE tokens of one slot
// (StepInputs): tile i covers order[tile_start[i] .. + tile_count[i]). A block works on one tile, so
// each weight it reads serves up to LORA_TILE tokens (Punica's SGMV, without tensor cores); tiles
// past the step's count have count 0 and exit, so a graph's grid can cover the worst case.
#define LORA_TILE 8

// u[t, j, r] = scale * dot(A[r, :], x[t, :]) for the tokens t of a tile, the projections
// j = 0..targets-1 of a group (first_target + j in the table) and RANKS ranks r per block.
// The block's threads split the input dimension (8 elements each per step; few steps even for the
// FFN's input), then reduce through shared memory. Projections the adapter leaves alone and ranks
// past the adapter's are not written (expand does not read them).
// x: [n, in] bf16, u: [n, targets, max_rank] fp32.
// grid: (max_tiles, targets, ceil(max_rank / RANKS)), block: 64..SHRINK_THREADS (fewer threads
// when there are many tiles: the final reduction then costs less against the dot products).
template <int RANKS>
__device__ __forceinline__ void shrink_tile(const int* __restrict__ token_slot, const int* __restrict__ order,
                                            const int* __restrict__ tile_start, const int* __restrict__ tile_count,
                                            const LoraDesc* __restrict__ table, int num_layers, int layer, int first_target,
                                            const bf16* __restrict__ x, int in, float* __restrict__ u, int max_rank) {
  __shared__ float partial[SHRINK_THREADS / 32][RANKS * LORA_TILE];  // blockDim.x <= SHRINK_THREADS
  const int count = tile_count[blockIdx.x], j = blockIdx.y;
  if (count == 0) return;
  const int* tokens = order + tile_start[blockIdx.x];
  const LoraDesc* d = lora_desc(table, token_slot[tokens[0]], num_layers, layer, first_target + j);
  const int r0 = blockIdx.z * RANKS;
  if (r0 >= d->rank) return;
  const int ranks = min(RANKS, d->rank - r0);
  float s[RANKS][LORA_TILE];
#pragma unroll
  for (int q = 0; q < RANKS; q++)
#pragma unroll
    for (int k = 0; k < LORA_TILE; k++) s[q][k] = 0.f;
  const bf16* a = d->a + (size_t)r0 * in;
  if ((in & 7) == 0) {
    for (int i = threadIdx.x * 8; i < in; i += blockDim.x * 8) {
      float af[RANKS][8], xf[8];
#pragma unroll
      for (int q = 0; q < RANKS; q++) {
        if (q < ranks) unpack8(*reinterpret_cast<const uint4*>(a + (size_t)q * in + i), af[q]);
      }
#pragma unroll
      for (int k = 0; k < LORA_TILE; k++) {
        if (k < count) {
          unpack8(*reinterpret_cast<const uint4*>(x + (size_t)tokens[k] * in + i), xf);
#pragma unroll
          for (int q = 0; q < RANKS; q++)
#pragma unroll
            for (int e = 0; e < 8; e++) s[q][k] += af[q][e] * xf[e];
        }
      }
    }
  } else {
    for (int i = threadIdx.x; i < in; i += blockDim.x) {
#pragma unroll
      for (int k = 0; k < LORA_TILE; k++) {
        if (k < count) {
          const float xv = to_float(x[(size_t)tokens[k] * in + i]);
#pragma unroll
          for (int q = 0; q < RANKS; q++) {
            if (q < ranks) s[q][k] += to_float(a[(size_t)q * in + i]) * xv;
          }
        }
      }
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int q = 0; q < RANKS; q++)
#pragma unroll
    for (int k = 0; k < LORA_TILE; k++) {
      const float v = warp_sum(s[q][k]);
      if (lane == 0) partial[warp][q * LORA_TILE + k] = v;
    }
  __syncthreads();
  if (threadIdx.x < RANKS * LORA_TILE) {
    const int q = threadIdx.x / LORA_TILE, k = threadIdx.x % LORA_TILE;
    if (q < ranks && k < count) {
      float v = 0.f;
      for (int w = 0; w < (int)(blockDim.x >> 5); w++) v += partial[w][threadIdx.x];
      u[((size_t)tokens[k] * gridDim.y + j) * max_rank + r0 + q] = v * d->scale;
    }
  }
}

// RANKS ranks per block: 4 when there are tiles enough to fill the GPU (prefill), 1 for a few tokens
// (decode), where the block count, not the work, bounds the time.
#define LORA_SHRINK(NAME, RANKS)                                                                                    \
  extern "C" __global__ void __launch_bounds__(SHRINK_THREADS)                                                     \
      NAME(const int* token_slot, const int* order, const int* tile_start, const int* tile_count,                 \
           const LoraDesc* table, int num_layers, int layer, int first_target, const bf16* x, int in, float* u,  \
           int max_rank) {                                                                                        \
    shrink_tile<RANKS>(token_slot, order, tile_start, tile_count, table, num_layers, layer, first_target, x, in, u, \
                       max_rank);                                                                                  \
  }
LORA_SHRINK(lora_shrink_r1, 1)
LORA_SHRINK(lora_shrink_r4, 4)

// y[t, c] += dot(B[o, :], u[t, j, :]) for the tokens t of a tile, where column c of the group's
// output is row o of projection j: the projections' outputs sit side by side in y (q | k | v,
// gate | up), widths out0, out1, out2 (multiples of COLS, so a thread's COLS columns share j).
// y: [n, y_stride] fp32 (accumulate) or bf16 (y_bf16: read, add, round). The tile's u rows are
// staged in shared memory (zeros past the tile's tokens); each u value read there feeds COLS columns.
// grid: (ceil(total / (block * COLS)), max_tiles), shared: LORA_TILE * targets * max_rank floats.
template <int COLS>
__device__ __forceinline__ void expand_tile(const int* __restrict__ token_slot, const int* __restrict__ order,
                                            const int* __restrict__ tile_start, const int* __restrict__ tile_count,
                                            const LoraDesc* __restrict__ table, int num_layers, int layer,
                                            int first_target, int targets, const float* __restrict__ u, int max_rank,
                                            void* __restrict__ y, int y_stride, int y_bf16, int out0, int out1,
                                            int out2) {
  extern __shared__ float u_tile[];  // [LORA_TILE][targets][max_rank]
  const int count = tile_count[blockIdx.y];
  if (count == 0) return;
  const int* tokens = order + tile_start[blockIdx.y];
  const int per_token = targets * max_rank;
  for (int i = threadIdx.x; i < LORA_TILE * per_token; i += blockDim.x) {
    u_tile[i] = i < count * per_token ? u[(size_t)tokens[i / per_token] * per_token + i % per_token] : 0.f;
  }
  __syncthreads();
  const int c0 = (blockIdx.x * blockDim.x + threadIdx.x) * COLS;
  int j = 0, o = c0;
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
  const LoraDesc* d = lora_desc(table, token_slot[tokens[0]], num_layers, layer, first_target + j);
  const int rank = d->rank;
  if (rank == 0) return;
  const bf16* b = d->b + (size_t)o * rank;  // COLS consecutive rows of B
  const float* uj = u_tile + j * max_rank;
  float acc[COLS][LORA_TILE];
#pragma unroll
  for (int q = 0; q < COLS; q++)
#pragma unroll
    for (int k = 0; k < LORA_TILE; k++) acc[q][k] = 0.f;
  int r = 0;
  if ((rank & 7) == 0) {  // B's rows are then 16-byte aligned: 8 weights a load
    for (; r < rank; r += 8) {
      float bf[COLS][8];
#pragma unroll
      for (int q = 0; q < COLS; q++) unpack8(*reinterpret_cast<const uint4*>(b + (size_t)q * rank + r), bf[q]);
#pragma unroll
      for (int e = 0; e < 8; e++)
#pragma unroll
        for (int k = 0; k < LORA_TILE; k++) {
          const float uv = uj[k * per_token + r + e];
#pragma unroll
          for (int q = 0; q < COLS; q++) acc[q][k] += bf[q][e] * uv;
        }
    }
  }
  for (; r < rank; r++) {
#pragma unroll
    for (int k = 0; k < LORA_TILE; k++) {
      const float uv = uj[k * per_token + r];
#pragma unroll
      for (int q = 0; q < COLS; q++) acc[q][k] += to_float(b[(size_t)q * rank + r]) * uv;
    }
  }
#pragma unroll
  for (int k = 0; k < LORA_TILE; k++) {
    if (k >= count) break;
#pragma unroll
    for (int q = 0; q < COLS; q++) {
      const size_t at = (size_t)tokens[k] * y_stride + c0 + q;
      if (y_bf16) {
        bf16* yb = reinterpret_cast<bf16*>(y);
        yb[at] = to_bf16(to_float(yb[at]) + acc[q][k]);
      } else {
        reinterpret_cast<float*>(y)[at] += acc[q][k];
      }
    }
  }
}

#define EXPAND_COLS 4
extern "C" __global__ void lora_expand(const int* token_slot, const int* order, const int* tile_start,
                                       const int* tile_count, const LoraDesc* table, int num_layers, int layer,
                                       int first_target, int targets, const float* u, int max_rank, void* y,
                                       int y_stride, int y_bf16, int out0, int out1, int out2) {
  expand_tile<EXPAND_COLS>(token_slot, order, tile_start, tile_count, table, num_layers, layer, first_target, targets,
                           u, max_rank, y, y_stride, y_bf16, out0, out1, out2);
}
