#!/usr/bin/env bash
# Compiles each src/main/cuda/*.cu into NAME.fatbin (sm_80 + sm_90a machine code, compute_90 PTX).
# Called by the Maven profile `cuda-kernels`: build-fatbin.sh NVCC SRC_DIR OUT_DIR.
# A fatbin newer than every source is kept, so test runs do not pay for nvcc each time.
set -euo pipefail
nvcc="$1"; src="$2"; out="$3"
mkdir -p "$out"
for cu in "$src"/*.cu; do
  name="$(basename "$cu" .cu)"; fatbin="$out/$name.fatbin"
  if [[ -f "$fatbin" && -z "$(find "$src" \( -name '*.cu' -o -name '*.cuh' \) -newer "$fatbin" -print -quit)" ]]; then
    continue
  fi
  echo "[kvass] nvcc $name.cu -> $fatbin"
  "$nvcc" -fatbin -O3 -std=c++17 --expt-relaxed-constexpr \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
    -gencode arch=compute_90,code=compute_90 -I "$src" "$cu" -o "$fatbin.tmp"
  mv "$fatbin.tmp" "$fatbin"
done
