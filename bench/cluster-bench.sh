#!/usr/bin/env bash
# The cluster on one machine (issue 13's figures): three kvass serve JVMs (every one gateway and worker, one CPU
# device each) serving stories260K.
#  1. Throughput with 1, 2 and 3 replicas (PUT /admin/deployments between runs), all requests through node 0.
#  2. TTFT of prefix-aware vs round-robin routing on a shared-prefix workload (K tenants, each with a long system
#     prompt): node 0's gateway routes prefix-aware, node 1's round-robin, over the same replicas; the two
#     alternate, twice each, in one run.
# Usage: bench/cluster-bench.sh OUT_DIR   (builds the jar and the load generator first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:?usage: cluster-bench.sh OUT_DIR}" && cd "$1" && pwd)"
source "$root/bin/jdk.sh"
cd "$root"
mvn -q -B -o -DskipTests package -pl cluster,bench -am
mvn -q -B -o dependency:build-classpath -pl bench -Dmdep.outputFile=target/classpath.txt >/dev/null
cp="bench/target/classes:$(cat bench/target/classpath.txt)"
lg() { "$JAVA_HOME/bin/java" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$cp" io.kvass.bench.loadgen.LoadGenerator "$@"; }
model="$(cd ../shared/fixtures/models/stories260K && pwd)"
conf="$out/cluster.conf"
cat >"$conf" <<CONF
kvass {
  kv-cache-memory = ${KV:-4M}
  max-num-seqs = 16
  cluster { seed-nodes = ["pekko://kvass@127.0.0.1:25510"], min-nr-of-members = 3 }
  deployments = [{ model = "$model", replicas = 2 }]
}
CONF
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
policy=(prefix-aware round-robin prefix-aware)
# NOTE: the jar built above, started directly (bin/kvass would rebuild it in three processes at once if a
# source changed meanwhile)
flags=(--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow --add-modules jdk.incubator.vector
  --add-opens java.base/jdk.internal.misc=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
  -Dai.djl.offline=true -DRUST_FLAVOR=cpu -XX:+UseParallelGC -Xmx512m)
for i in 0 1 2; do
  "$JAVA_HOME/bin/java" "${flags[@]}" -Dkvass.router.policy="${policy[$i]}" -jar cluster/target/kvass.jar serve \
    --config "$conf" --cluster-port $((25510 + i)) --port $((18500 + i)) --threads 1 >"$out/node$i.log" 2>&1 &
  pids+=($!)
done
until curl -sf localhost:18500/health >/dev/null && curl -sf localhost:18501/health >/dev/null; do sleep 1; done
scale() {
  curl -sf -X PUT -H 'Content-Type: application/json' localhost:18500/admin/deployments/stories260K -d "{\"replicas\": $1}" >/dev/null
  until [[ "$(curl -sf localhost:18500/admin/replicas | grep -o '"available":true' | wc -l)" == "$1" ]]; do sleep 1; done
  sleep 2
}
echo "== throughput" | tee "$out/summary.txt"
for n in 1 2 3; do
  scale "$n"
  lg --base-url http://127.0.0.1:18500 --model stories260K --endpoint /v1/completions --num-prompts 160 \
     --max-concurrency 32 --dataset random --random-input-len 64 --random-output-len 64 --random-vocab-size 512 \
     --seed "$n" --ignore-eos --warmup-requests 16 --result-file "$out/throughput-r$n.json" | tee "$out/throughput-r$n.txt"
  echo "replicas=$n load=$(cut -d' ' -f1 /proc/loadavg) $(grep -E 'Output token throughput|Failed requests' "$out/throughput-r$n.txt" | tr -s ' ' | tr '\n' ' ')" | tee -a "$out/summary.txt"
done
echo "== prefix-aware (node 0) vs round-robin (node 1), ${TENANTS:-16} tenants" | tee -a "$out/summary.txt"
scale "${PREFIX_REPLICAS:-3}"
for round in 1 2; do
  for port in 18500 18501; do
    name=$([[ $port == 18500 ]] && echo prefix-aware || echo round-robin)
    lg --base-url "http://127.0.0.1:$port" --model stories260K --endpoint /v1/completions --num-prompts 192 \
       --max-concurrency 8 --dataset random --random-prefix-len 320 --random-prefix-groups "${TENANTS:-16}" \
       --random-input-len 16 --random-output-len 8 --random-vocab-size 512 --seed "$round$port" --ignore-eos \
       --warmup-requests 0 --result-file "$out/$name-$round.json" | tee "$out/$name-$round.txt"
    echo "$name round $round load=$(cut -d' ' -f1 /proc/loadavg) $(grep -E 'Median TTFT|P90 TTFT|Output token throughput' "$out/$name-$round.txt" | tr -s ' ' | tr '\n' ' ')" | tee -a "$out/summary.txt"
  done
done
curl -s localhost:18500/admin/replicas >"$out/replicas-after.json"
curl -s localhost:18500/metrics | grep -E '^kvass:router_decisions' >"$out/router-decisions-node0.txt" || true
curl -s localhost:18501/metrics | grep -E '^kvass:router_decisions' >"$out/router-decisions-node1.txt" || true
