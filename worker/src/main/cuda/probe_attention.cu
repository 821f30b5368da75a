// Benchmarks only (CudaAttentionProbe): decode.cu's tensor-core kernel with its per-tile arithmetic left
// out, every load, barrier, prologue and epilogue kept: what the reads cost inside that kernel's structure.
#define KVASS_ATTENTION_NO_MATH
#define KVASS_DECODE_NAME(name) probe_no_math_##name
#include "decode.cu"
