#!/usr/bin/env bash
# On the GPU machine, from the bundle scripts/gpu-run made: unpacks the JRE, then for each argument
# runs the GPU-tagged tests (tests), the benchmark (bench) or a shorter benchmark (bench-quick).
# Results go to $OUT (the device tool's folder that comes back) or ./out.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/out}"; mkdir -p "$out"
[[ -x "$here/jre/bin/java" ]] || tar xJf "$here/jre.txz" -C "$here"
java="$here/jre/bin/java"
flags=(--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow --add-modules jdk.incubator.vector
       -Dai.djl.offline=true -DRUST_FLAVOR=cpu -Xmx16g)
cp="$here/app/worker-classes:$here/app/worker-test-classes:$here/app/kvpaging-classes:$here/lib/*"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm --format=csv 2>&1 | tee "$out/gpu.txt"
status=0
for what in "${@:-tests bench}"; do
  case "$what" in
    tests)
      # NOTE: JUnit's own --class-path does not expand "lib/*"; the java launcher's -cp does.
      "$java" "${flags[@]}" -Dkvass.fixtures="$here/fixtures" -cp "$cp" org.junit.platform.console.ConsoleLauncher execute \
        --scan-classpath "$here/app/worker-test-classes" --include-package io.kvass.worker.cuda --include-tag gpu --exclude-engine junit-vintage --details=tree \
        --disable-banner --reports-dir "$out/junit" 2>&1 | tee "$out/tests.log" || status=1
      grep -h '^\[cuda\]' "$out/tests.log" > "$out/tests-summary.txt" || true ;;
    bench|bench-quick)
      "$java" "${flags[@]}" -cp "$cp" io.kvass.worker.cuda.CudaBenchmark "$out/cuda-bench.json" \
        $([[ "$what" == bench-quick ]] && echo quick) 2>&1 | tee "$out/bench.log" || status=1 ;;
    probe)
      "$java" "${flags[@]}" -cp "$cp" io.kvass.worker.cuda.CudaAttentionProbe 2>&1 | tee "$out/probe.log" || status=1 ;;
    ncu-attention)
      ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
      "$ncu" --target-processes all -k regex:paged_attention_warps4 -c 1 --section SpeedOfLight \
        --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats \
        --section Occupancy --section LaunchStats "$java" "${flags[@]}" -cp "$cp" \
        io.kvass.worker.cuda.CudaAttentionProbe 2>&1 | tee "$out/ncu-attention.log" || status=1 ;;
    *) echo "unknown step '$what' (tests | bench | bench-quick | probe | ncu-attention)"; status=1 ;;
  esac
done
exit $status
