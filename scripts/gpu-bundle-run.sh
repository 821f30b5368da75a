#!/usr/bin/env bash
# On the GPU machine, from the bundle scripts/gpu-run made: unpacks the JRE and the app, then for each
# argument runs
#   tests          the GPU-tagged tests (JUnit console)
#   bench          CudaBenchmark (direct backend: decode batch 1..256, prefill), bench-quick: shorter
#   lora-bench     CudaLoraBenchmark (multi-LoRA decode at batch 1/32/128, 0/1/16 adapters; prefill)
#   skinny-probe   CudaSkinnyProbe (the batch-1 GEMVs alone, graph-replayed, each split)
#   gemm-probe     CudaGemmProbe (decode GEMMs at 128/256 tokens: cublasGemmEx vs gemm.cu's decode GEMM variants,
#                  then GemmTuner's pick per shape and its time vs cublasGemmEx)
#   tuner-tests    GemmTunerTest alone (the GEMM autotuner's GPU tests)
#   ablation       CudaAblationProbe (a decode step's graph time with phases left out: what each costs in place)
#   lora-e2e       `kvass generate --adapter` on cpu and cuda, `kvass serve --device cuda --lora-modules` + curl
#   decode         CudaDecodeBenchmark (batch-1 fusions on/off, forwardAndSample vs forwardGreedy)
#   grammar        structured outputs: CudaGrammarMaskTest (device masks = CPU sampler) and CudaGrammarBenchmark
#   serve          `kvass serve --device cuda` on a Llama-3-8B-shaped model with random weights made on
#                  the GPU, driven by the load generator (SERVE_RUNS, below); server log and JSON results
#   probe | ncu-attention   attention kernel studies
# Results go to $OUT (the device tool's folder that comes back) or ./out.
#
# serve settings (env): SERVE_RUNS="c64 c1"   each cN: --max-concurrency N, N*SERVE_WAVES prompts
#   (at least SERVE_MIN_PROMPTS), SERVE_INPUT/SERVE_OUTPUT lengths (512/128), SERVE_SAMPLING=cpu to
#   sample on the host instead of the GPU, SERVE_FLAGS for more `kvass serve` flags.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/out}"; mkdir -p "$out"
t0=$(date +%s)
[[ -x "$here/jre/bin/java" ]] || tar xJf "$here/jre.txz" -C "$here"
[[ -f "$here/app/kvass.jar" ]] || tar xJf "$here/app.txz" -C "$here"
echo "[run] unpacked in $(( $(date +%s) - t0 )) s; bundle of $(head -1 "$here/commit.txt" 2>/dev/null)"
java="$here/jre/bin/java"
app="$here/app"
flags=(--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow --add-modules jdk.incubator.vector
       --add-opens java.base/jdk.internal.misc=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
       -Dai.djl.offline=true -DRUST_FLAVOR=cpu)
cp="$app/worker-test-classes:$app/kvass.jar:$app/junit-console.jar"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm --format=csv 2>&1 | tee "$out/gpu.txt"
status=0

serve() {
  local model="$app/models/llama3-8b-random" port=8000 log="$out/serve.log"
  local sampling=() runs="${SERVE_RUNS:-c64 c1}"
  [[ "${SERVE_SAMPLING:-gpu}" == cpu ]] && sampling=(-Dkvass.cuda.sampling=cpu)
  local start=$(date +%s)
  "$java" "${flags[@]}" -XX:+UseParallelGC -Xmx24g -Dkvass.cuda.randomWeights=1 "${sampling[@]}" \
      -cp "$app/kvass.jar" io.kvass.cluster.Main serve --model "$model" --served-model-name llama3-8b-random \
      --device cuda --port $port --max-model-len 2048 --gpu-memory-utilization 0.9 ${SERVE_FLAGS:-} > "$log" 2>&1 &
  local pid=$!
  local up=0
  for _ in $(seq 1 360); do
    if curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null 2>&1; then up=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
  done
  echo "[serve] server up=$up after $(( $(date +%s) - start )) s"
  grep -E "CUDA backend|replica .* is up|ERROR|Exception" "$log" | head -20
  if [[ $up == 1 ]]; then
    for run in $runs; do
      local c="${run#c}" waves="${SERVE_WAVES:-8}"
      local n=$(( c * waves )); (( n < ${SERVE_MIN_PROMPTS:-32} )) && n=${SERVE_MIN_PROMPTS:-32}
      echo "[serve] run $run: concurrency $c, $n prompts, ${SERVE_INPUT:-512} in / ${SERVE_OUTPUT:-128} out, ignore_eos"
      timeout "${SERVE_RUN_TIMEOUT:-240}" "$java" -XX:+UseSerialGC -Xmx4g -cp "$app/bench-classes:$app/kvass.jar" io.kvass.bench.loadgen.LoadGenerator \
          --base-url "http://127.0.0.1:$port" --endpoint /v1/completions --model llama3-8b-random \
          --dataset random --random-input-len "${SERVE_INPUT:-512}" --random-output-len "${SERVE_OUTPUT:-128}" \
          --num-prompts $n --max-concurrency "$c" --seed 0 --ignore-eos --warmup-requests "$c" \
          --result-file "$out/serve-$run${SERVE_TAG:-}.json" 2>&1 | tee "$out/serve-$run${SERVE_TAG:-}.txt" || status=1
    done
  else
    status=1
  fi
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  tail -5 "$log"
}

for what in "${@:-tests bench}"; do
  case "$what" in
    tests)
      # NOTE: JUnit's own --class-path does not expand "lib/*"; the java launcher's -cp does.
      timeout "${TESTS_TIMEOUT:-300}" "$java" "${flags[@]}" -Xmx16g -Dkvass.fixtures="$app/fixtures" -cp "$cp" org.junit.platform.console.ConsoleLauncher execute \
        --scan-classpath "$app/worker-test-classes" --include-package io.kvass.worker.cuda --include-tag gpu --exclude-engine junit-vintage --details=tree \
        --disable-banner --reports-dir "$out/junit" 2>&1 | tee "$out/tests.log" || status=1
      grep -h '^\[cuda\]' "$out/tests.log" > "$out/tests-summary.txt" || true ;;
    tuner-tests)
      timeout 300 "$java" "${flags[@]}" -Xmx8g -cp "$cp" org.junit.platform.console.ConsoleLauncher execute \
        --select-class io.kvass.worker.cuda.GemmTunerTest --include-tag gpu --exclude-engine junit-vintage --details=tree \
        --disable-banner --reports-dir "$out/junit-tuner" 2>&1 | tee "$out/tuner-tests.log" || status=1 ;;
    bench|bench-quick)
      "$java" "${flags[@]}" -Xmx16g -cp "$cp" io.kvass.worker.cuda.CudaBenchmark "$out/cuda-bench.json" \
        $([[ "$what" == bench-quick ]] && echo quick) 2>&1 | tee "$out/bench.log" || status=1 ;;
    lora-bench)
      timeout 300 "$java" "${flags[@]}" -Xmx24g -cp "$cp" io.kvass.worker.cuda.CudaLoraBenchmark "$out/cuda-lora-bench.json" \
        2>&1 | tee "$out/lora-bench.log" || status=1 ;;
    ablation)
      timeout 300 "$java" "${flags[@]}" -Xmx16g -cp "$cp" io.kvass.worker.cuda.CudaAblationProbe 2>&1 | grep -v WARN | tee "$out/ablation.log" || status=1 ;;
    gemm-probe)
      timeout 300 "$java" "${flags[@]}" -cp "$cp" io.kvass.worker.cuda.CudaGemmProbe 2>&1 | grep -v WARN | tee "$out/gemm-probe.log" || status=1 ;;
    skinny-probe)
      timeout 120 "$java" "${flags[@]}" -cp "$cp" io.kvass.worker.cuda.CudaSkinnyProbe 2>&1 | grep -v WARN | tee "$out/skinny-probe.log" || status=1 ;;
    lora-e2e)
      # The CLI and the server with a LoRA adapter on the GPU: llama-gqa's adapter-b on stories260K's first two
      # layers (as GenerateCommandTest does on the CPU), generate on cpu and cuda, then serve it on cuda and ask
      # for the adapter by name over HTTP.
      ad="$here/adapter-b-stories"; mkdir -p "$ad"
      sed 's/"layers_to_transform": null/"layers_to_transform": [0, 1]/' "$app/fixtures/reference/llama-gqa/adapter-b/adapter_config.json" > "$ad/adapter_config.json"
      cp "$app/fixtures/reference/llama-gqa/adapter-b/adapter_model.safetensors" "$ad/"
      m="$app/fixtures/models/stories260K"
      for dev in cpu cuda; do
        echo "[lora-e2e] generate --device $dev --adapter (and without)"
        "$java" "${flags[@]}" -cp "$app/kvass.jar" io.kvass.cluster.Main generate --model "$m" --device $dev --adapter "$ad" \
          --prompt-ids 1 --prompt "Once upon a time" --max-tokens 24 --temperature 0 --json 2>&1 | grep '^{' | tee "$out/lora-generate-$dev.jsonl" || status=1
        "$java" "${flags[@]}" -cp "$app/kvass.jar" io.kvass.cluster.Main generate --model "$m" --device $dev \
          --prompt-ids 1 --max-tokens 24 --temperature 0 --json 2>&1 | grep '^{' | tee "$out/base-generate-$dev.jsonl" || status=1
      done
      "$java" "${flags[@]}" -cp "$app/kvass.jar" io.kvass.cluster.Main serve --model "$m" --device cuda --port 8001 \
        --enable-lora --lora-modules "story-b=$ad" --max-lora-rank 8 --lora-allowed-roots "$here" > "$out/lora-serve.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 120); do curl -sf http://127.0.0.1:8001/v1/models > /dev/null 2>&1 && break; sleep 0.5; done
      curl -s http://127.0.0.1:8001/v1/models | tee "$out/lora-models.json"; echo
      for name in story-b stories260K; do
        curl -s http://127.0.0.1:8001/v1/completions -H 'Content-Type: application/json' \
          -d "{\"model\": \"$name\", \"prompt\": \"Once upon a time\", \"max_tokens\": 24, \"temperature\": 0}" | tee "$out/lora-completion-$name.json"; echo
      done
      kill $pid 2>/dev/null; wait $pid 2>/dev/null
      grep -E "CUDA backend|LoRA|ERROR|Exception" "$out/lora-serve.log" | head -10 ;;
    decode)
      timeout 240 "$java" "${flags[@]}" -Xmx16g -cp "$cp" io.kvass.worker.cuda.CudaDecodeBenchmark 2>&1 | tee "$out/decode.log" || status=1 ;;
    grammar)
      timeout 200 "$java" "${flags[@]}" -Xmx8g -Dkvass.fixtures="$app/fixtures" -cp "$cp" org.junit.platform.console.ConsoleLauncher execute \
        --select-class io.kvass.worker.cuda.CudaGrammarMaskTest --include-tag gpu --exclude-engine junit-vintage --details=tree \
        --disable-banner --reports-dir "$out/junit-grammar" 2>&1 | tee "$out/grammar-tests.log" || status=1
      timeout 200 "$java" "${flags[@]}" -Xmx16g -cp "$cp" io.kvass.worker.cuda.CudaGrammarBenchmark "$app/models/llama3-8b-random" \
        2>&1 | grep -v WARN | tee "$out/grammar-bench.log" || status=1 ;;
    serve) serve ;;
    serve-cpu-sampling) SERVE_SAMPLING=cpu SERVE_RUNS="${SERVE_CPU_RUNS:-c64}" SERVE_TAG=-cpusampling serve ;;
    probe)
      "$java" "${flags[@]}" -cp "$cp" io.kvass.worker.cuda.CudaAttentionProbe 2>&1 | tee "$out/probe.log" || status=1 ;;
    ncu-attention)
      ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
      # NCU_KERNEL: a kernel-name regex (default: the tensor-core decode kernel), NCU_VARIANT: the probe's variant.
      "$ncu" --target-processes all -k "regex:${NCU_KERNEL:-paged_attention_mma_d}" -c 1 --section SpeedOfLight \
        --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats \
        --section SchedulerStats --section Occupancy --section LaunchStats "$java" "${flags[@]}" -cp "$cp" \
        io.kvass.worker.cuda.CudaAttentionProbe "${NCU_VARIANT:-MMA}" 2>&1 | tee "$out/ncu-attention.log" || status=1 ;;
    *) echo "unknown step '$what' (tests | bench | bench-quick | decode | serve | serve-cpu-sampling | probe | ncu-attention | ablation | gemm-probe | tuner-tests | skinny-probe | lora-bench | lora-e2e)"; status=1 ;;
  esac
  echo "[run] $what done at +$(( $(date +%s) - t0 )) s"
done
exit $status
