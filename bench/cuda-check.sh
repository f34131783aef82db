#!/usr/bin/env bash
# Every GPU check of issue 6 in one go, on a GPU machine, from the repository root, with
# .devcarry/ (scripts/device-bundle.sh) carried. Logs go to $OUT (default /tmp/cuda-check).
#   bench/cuda-check.sh [--quick]     --quick: tests and the batch-1 decode only
# 1. kernel tests and engine tests (GPU vs CPU logits, greedy, batch invariance, memory)
# 2. inferd memory on the real (truncated) model
# 3. HBM ceiling: device-to-device copy bandwidth (torch); 7B dummy fp16 batch-1 decode
# 4. 7B dummy fp16 offline throughput, inferd vs transformers generate, same shapes
# 5. inferd serve at 64 concurrent streams: output tok/s, TTFT / ITL p99
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=${OUT:-/tmp/cuda-check}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
export INFERD_MODEL=$PWD/.devcarry/model.gguf
BIN=$PWD/.devcarry/bin
VOCAB=$PWD/.devcarry/vocab-llama-spm.gguf
DUMMY7B=(--load-format dummy --model llama-2-7b --dtype float16 --tokenizer "$VOCAB" --device cuda)
step() { echo; echo "== $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

step "kernel tests"
"$BIN/test_cuda_kernels" 2>&1 | tee "$OUT/test_cuda_kernels.txt" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error" | head -40
step "sampling kernel tests"
"$BIN/test_cuda_sampling" 2>&1 | tee "$OUT/test_cuda_sampling.txt" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |random draws|Failure|error" | head -40
step "engine tests on the GPU"
"$BIN/test_cuda_backend" 2>&1 | tee "$OUT/test_cuda_backend.txt" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |^\[(float|bfloat)|Failure|error" | head -40
step "inferd memory"
"$BIN/inferd" memory --device cuda --model "$INFERD_MODEL" 2>&1 | tee "$OUT/memory.txt" | tail -14

step "HBM ceiling and 7B batch-1 decode"
python3 - <<'PY' 2>&1 | tee "$OUT/bandwidth.txt"
import torch, time
n = 4 << 30
a = torch.empty(n, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(10): b.copy_(a)
torch.cuda.synchronize(); s = (time.perf_counter() - t) / 10
print(f"device copy: {2 * n / s / 1e9:.0f} GB/s counting read + write ({n / s / 1e9:.0f} GB/s read)")
PY
"$BIN/inferd" bench latency "${DUMMY7B[@]}" --input-len 128 --output-len 128 --batch-size 1 --json 2>"$OUT/latency.log" \
  | tee "$OUT/latency.json"
grep -E "weights on the GPU|KV cache size|CUDA graphs|error" "$OUT/latency.log" | head
[ "$QUICK" = 1 ] && exit 0

step "7B offline throughput: inferd"
"$BIN/inferd" bench throughput "${DUMMY7B[@]}" --num-prompts 1000 --input-len 512 --output-len 128 \
  --max-num-seqs 256 --max-num-batched-tokens 8192 --max-model-len 1024 2>&1 | tee "$OUT/throughput.txt" | tail -4
step "7B offline throughput: transformers generate (256 prompts, batches of 64)"
python3 bench/hf_generate.py --shape llama-2-7b --num-prompts 256 --input-len 512 --output-len 128 --batch-size 64 \
  2>&1 | tee "$OUT/hf_generate.txt" | tail -2

step "serving at 64 concurrent streams"
"$BIN/inferd" serve "${DUMMY7B[@]}" --port 8011 --max-num-seqs 128 --max-model-len 1024 >"$OUT/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 240); do curl -sf localhost:8011/health >/dev/null && break; sleep 1; done
"$BIN/inferd" bench serve --base-url http://localhost:8011 --model "$VOCAB" --metric-percentiles 50,99 \
  --num-prompts 512 --max-concurrency 64 --input-len 512 --output-len 128 2>&1 | tee "$OUT/serve_bench.txt" | tail -25
kill "$SERVER"; wait "$SERVER" 2>/dev/null
echo "logs in $OUT"
