#!/usr/bin/env bash
# Starts `kvass serve` on stories260K (a free port, an API key, one LoRA adapter), runs check.mjs with the
# OpenAI Node SDK against it, then stops the server with SIGTERM. Needs node (20+) and npm; skipped without node.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e/openai-node: skipped (no node/npm on PATH)" >&2
  exit 0
fi
if [[ ! -d "$here/node_modules/openai" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || {
    echo "e2e/openai-node: 'npm ci' failed (no registry?); set KVASS_SKIP_E2E=1 to skip this step" >&2
    exit 1
  }
fi
fixtures="${KVASS_FIXTURES:-$root/../shared/fixtures}"
model="$fixtures/models/stories260K"
# llama-gqa's adapter-b (q_proj, v_proj) fits the shapes of stories260K's first two layers.
adapters="$(mktemp -d)"
mkdir "$adapters/story-b"
cp "$fixtures/reference/llama-gqa/adapter-b/adapter_model.safetensors" "$adapters/story-b/"
sed 's/"layers_to_transform": null/"layers_to_transform": [0, 1]/' \
  "$fixtures/reference/llama-gqa/adapter-b/adapter_config.json" >"$adapters/story-b/adapter_config.json"
log="$(mktemp)"
"$root/bin/kvass" serve --model "$model" --host 127.0.0.1 --port 0 --api-key sk-e2e --max-num-seqs 16 \
  --kv-cache-memory 32M --enable-lora --lora-modules "story-b=$adapters/story-b" >"$log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; rm -rf "$adapters"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's/.*serving \[.*\] on http:\/\/[^ ]*:\([0-9][0-9]*\)$/\1/p' "$log" | head -1)"
  [[ -n "$port" ]] && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "e2e/openai-node: kvass serve exited" >&2; exit 1; fi
  sleep 0.2
done
[[ -n "$port" ]] || { cat "$log" >&2; echo "e2e/openai-node: kvass serve did not start" >&2; exit 1; }
KVASS_URL="http://127.0.0.1:$port/v1" KVASS_API_KEY=sk-e2e node "$here/check.mjs" || { tail -50 "$log" >&2; exit 1; }
