#!/usr/bin/env bash
# Online serving, side by side: the same `inferd bench serve` load (random prompts, streamed
# /v1/completions, ignore_eos) against llama-server and against `inferd serve`, both on the
# same GGUF with comparable settings, then a table of the headline numbers with ratios.
#
# Usage:
#   bench/serve_vs_llamacpp.sh [--num-prompts N] [--max-concurrency C] [--input-len I]
#                              [--output-len O] [--request-rate R] [--model GGUF]
#                              [--threads T] [--seed S] [--inferd BIN] [--port P]
#
# Defaults are small enough for a 2-core machine: 32 prompts, concurrency 8, 128 in, 64 out.
# Settings: llama-server gets C slots (-np C), a context of C x (I + O + 64) tokens (each
# slot I + O + 64), continuous batching and T threads; inferd serve gets --max-num-seqs C,
# --max-model-len I + O + 64 and T threads. Prefix caching stays at each server's default
# (the random prompts share no prefix).
#
# Timings are only comparable on a quiet machine: with other jobs on the same cores,
# llama.cpp's OpenMP threads (which spin at barriers) slow down far more than inferd's; the
# load average before each run is printed beside its result.
#
# inferd: $INFERD, --inferd, or the newest of build/*/src/cli/inferd that has `bench serve`.
# llama-server: $LLAMACPP_SERVER, else scripts/llamacpp.sh --with-bench (builds it once).
# Logs and JSON results: $OUT_DIR (default: a fresh directory under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

NUM_PROMPTS=32 CONCURRENCY=8 INPUT_LEN=128 OUTPUT_LEN=64 REQUEST_RATE=inf SEED=0
THREADS=$(nproc)
MODEL=""
PORT=${PORT:-18300}
INFERD=${INFERD:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --num-prompts) NUM_PROMPTS=$2; shift 2 ;;
    --max-concurrency) CONCURRENCY=$2; shift 2 ;;
    --input-len) INPUT_LEN=$2; shift 2 ;;
    --output-len) OUTPUT_LEN=$2; shift 2 ;;
    --request-rate) REQUEST_RATE=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --inferd) INFERD=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "serve_vs_llamacpp.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[serve_vs_llamacpp] $*" >&2; }

# --- binaries and model -------------------------------------------------------------------
if [ -z "$INFERD" ]; then
  for bin in $(ls -t build/*/src/cli/inferd 2>/dev/null); do
    if "$bin" bench serve --help >/dev/null 2>&1; then INFERD=$bin; break; fi
  done
fi
if [ -z "$INFERD" ] || ! "$INFERD" bench serve --help >/dev/null 2>&1; then
  echo "error: no inferd binary with 'bench serve' (build one: scripts/build.sh, or pass --inferd BIN)" >&2
  exit 1
fi
if [ -z "${LLAMACPP_SERVER:-}" ] || [ ! -x "${LLAMACPP_SERVER:-}" ]; then
  eval "$(scripts/llamacpp.sh --with-bench)"
fi
if [ -z "$MODEL" ]; then
  MODEL=${INFERD_MODEL:-${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/models/SmolLM2-135M-Instruct.Q4_1.gguf}
fi
[ -f "$MODEL" ] || { echo "error: model not found: $MODEL (scripts/fetch-model.sh fetches the default)" >&2; exit 1; }

OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/serve_vs_llamacpp.XXXXXX)}
mkdir -p "$OUT_DIR"
SLOT_CTX=$((INPUT_LEN + OUTPUT_LEN + 64))
log "inferd: $INFERD"
log "llama-server: $LLAMACPP_SERVER"
log "model: $MODEL; $NUM_PROMPTS prompts, concurrency $CONCURRENCY, $INPUT_LEN in / $OUTPUT_LEN out," \
    "rate $REQUEST_RATE, $THREADS threads; logs in $OUT_DIR"

# --- server lifecycle ---------------------------------------------------------------------
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# wait_ready NAME LOG: until GET /health answers 200 (the server loads the model first).
wait_ready() {
  local name=$1 logfile=$2
  for _ in $(seq 600); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "error: $name exited before it was ready; last lines of $logfile:" >&2
      tail -20 "$logfile" >&2
      return 1
    fi
    if curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; then return 0; fi
    sleep 0.2
  done
  echo "error: $name not ready after 120 s (log: $logfile)" >&2
  return 1
}

# run_bench NAME: the load, result block to stdout and JSON to $OUT_DIR/NAME.json.
run_bench() {
  local name=$1
  echo
  echo "######## $name (load average before the run: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$INFERD" bench serve --base-url "http://127.0.0.1:$PORT" --model "$MODEL" \
    --num-prompts "$NUM_PROMPTS" --max-concurrency "$CONCURRENCY" --request-rate "$REQUEST_RATE" \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed "$SEED" \
    --result-filename "$OUT_DIR/$name.json" 2> >(tee "$OUT_DIR/$name.bench.log" >&2) ||
    log "the load against $name failed (see above and $OUT_DIR/$name.bench.log)"
}

# --- llama-server -------------------------------------------------------------------------
log "starting llama-server on :$PORT"
"$LLAMACPP_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -np "$CONCURRENCY" \
  -c $((CONCURRENCY * SLOT_CTX)) -cb -t "$THREADS" -tb "$THREADS" --no-webui \
  > "$OUT_DIR/llama-server.log" 2>&1 &
SERVER_PID=$!
wait_ready llama-server "$OUT_DIR/llama-server.log"
run_bench llama-server
stop_server

# --- inferd serve -------------------------------------------------------------------------
HAVE_INFERD_SERVE=1
if ! "$INFERD" serve --help >/dev/null 2>&1; then
  HAVE_INFERD_SERVE=0
  echo
  echo "inferd serve is not available in $INFERD (not built into this binary yet);" \
       "only llama-server was measured." >&2
else
  log "starting inferd serve on :$PORT"
  "$INFERD" serve "$MODEL" --host 127.0.0.1 --port "$PORT" --max-num-seqs "$CONCURRENCY" \
    --max-model-len "$SLOT_CTX" --threads "$THREADS" > "$OUT_DIR/inferd-serve.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "inferd serve" "$OUT_DIR/inferd-serve.log"
  run_bench inferd
  stop_server
fi

# --- table --------------------------------------------------------------------------------
[ "$HAVE_INFERD_SERVE" -eq 1 ] || exit 0
python3 - "$OUT_DIR/llama-server.json" "$OUT_DIR/inferd.json" <<'EOF'
import json, os, sys
if not all(os.path.exists(p) for p in sys.argv[1:3]):
    sys.exit("no side-by-side table: a run produced no result")
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rows = [  # (label, key, higher is better)
    ("Request throughput (req/s)", "request_throughput", True),
    ("Output token throughput (tok/s)", "output_throughput", True),
    ("Median TTFT (ms)", "median_ttft_ms", False),
    ("P99 TTFT (ms)", "p99_ttft_ms", False),
    ("Median TPOT (ms)", "median_tpot_ms", False),
    ("Median ITL (ms)", "median_itl_ms", False),
    ("P99 ITL (ms)", "p99_itl_ms", False),
]
print()
print(f"{'':34} {'llama-server':>13} {'inferd':>13} {'inferd/llama':>13}")
for label, key, _ in rows:
    if key not in a or key not in b:
        continue
    x, y = a[key], b[key]
    ratio = f"{y / x:.2f}x" if x else "-"
    print(f"{label:34} {x:13.2f} {y:13.2f} {ratio:>13}")
print(f"{'Failed requests':34} {a['failed']:13d} {b['failed']:13d}")
print("(throughput: higher is better; latencies: lower is better)")
EOF
