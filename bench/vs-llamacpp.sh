#!/usr/bin/env bash
# CPU performance, side by side with llama.cpp on the same GGUF and machine, in one run:
#   prefill    llama-bench pp512             vs  inferd bench latency, 512-token prompt
#   decode     llama-bench tg128             vs  inferd bench latency, 128 tokens from a 1-token
#                                                prompt (also: at context 512-640)
#   ceiling    read bandwidth over the model's size (bench/kernels ReadBandwidth) / weight bytes:
#              the batch-1 decode rate if every weight byte streamed once per token at that rate
#   batched    llama-batched-bench 128/128 at 64 parallel sequences (output tokens over all of
#              its wall time) vs inferd bench throughput --num-prompts 64 (prefill included)
#   serving    bench/serve_vs_llamacpp.sh: 64 requests, 32 concurrent, 128 in / 128 out
#              (output tok/s and TTFT p99), unless --no-serve
#   7B         with --with-7b: the same prefill/decode pair on a Llama-2-7B-shaped GGUF of random
#              weights (bench/make_dummy_gguf.py, written once into the model cache) per type
#              in --7b-types (default q4_0), with 128-token prompts and 32 decoded tokens
# and prints one table with ratios (inferd / llama.cpp; higher is better for throughputs).
#
# Usage: bench/vs-llamacpp.sh [--model GGUF] [--threads T] [--reps N] [--no-serve]
#                             [--with-7b] [--7b-types q4_0,q8_0,f16]
# llama.cpp comes from scripts/llamacpp.sh --with-bench (the llama-cpp-python sdist's vendored
# source, built once into ~/.cache/inferd); inferd from $INFERD or build/release.
# Medians over --reps runs (default 3). Quote the table only from a quiet machine: the load
# average is printed with it.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="" THREADS=$(nproc) REPS=3 SERVE=1 WITH_7B=0 TYPES_7B=q4_0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --no-serve) SERVE=0; shift ;;
    --with-7b) WITH_7B=1; shift ;;
    --7b-types) TYPES_7B=$2; WITH_7B=1; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] || MODEL=$(./scripts/fetch-model.sh)
INFERD=${INFERD:-build/release/src/cli/inferd}
KBENCH=${KBENCH:-build/release/bench/kernels/inferd_kernel_bench}
[ -x "$INFERD" ] || { echo "error: $INFERD not built (scripts/build.sh release)" >&2; exit 1; }
[ -x "$KBENCH" ] || { echo "error: $KBENCH not built (scripts/build.sh release)" >&2; exit 1; }
./scripts/llamacpp.sh --with-bench >&2
# shellcheck disable=SC1090
source "${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/llama.cpp-0.3.36/env.sh"
OUT=$(mktemp -d /tmp/vs-llamacpp.XXXXXX)
ROWS="$OUT/rows.tsv"  # name, llama.cpp, inferd, unit
: > "$ROWS"
echo "model: $MODEL; threads: $THREADS; reps: $REPS; results in $OUT" >&2
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
     "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
json_get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$ROWS"; }

# llama-bench pp/tg: avg_ts of each test (JSON), REPS repetitions inside llama-bench.
llama_bench() {  # model pp tg reps -> "pp_ts tg_ts"
  "$LLAMACPP_BENCH" -m "$1" -t "$THREADS" -p "$2" -n "$3" -r "$4" -o json 2>>"$OUT/llama-bench.log" |
    python3 -c '
import json, sys
rows = json.load(sys.stdin)
pp = [r["avg_ts"] for r in rows if r["n_gen"] == 0][0]
tg = [r["avg_ts"] for r in rows if r["n_prompt"] == 0][0]
print(pp, tg)'
}

# inferd bench latency: prefill rate of a P-token prompt, decode rate of G tokens after a
# 1-token prompt (as llama-bench's tg), medians over R runs; extra args pass through.
inferd_pair() {  # reps pp tg args... -> "pp_ts tg_ts"
  local reps=$1 pp=$2 tg=$3; shift 3
  local PPS=() TGS=()
  for _ in $(seq "$reps"); do
    local j
    j=$("$INFERD" bench latency "$@" --threads "$THREADS" --batch-size 1 --input-len "$pp" --output-len 2 \
        --num-iters 1 --max-num-batched-tokens "$pp" --json 2>>"$OUT/inferd.log")
    PPS+=("$(json_get "$j" prefill_tokens_per_s)")
    j=$("$INFERD" bench latency "$@" --threads "$THREADS" --batch-size 1 --input-len 1 --output-len $((tg + 1)) \
        --num-iters 1 --json 2>>"$OUT/inferd.log")
    TGS+=("$(json_get "$j" decode_tokens_per_s)")
  done
  echo "$(median "${PPS[@]}") $(median "${TGS[@]}")"
}

# --- embedded model ------------------------------------------------------------------------
read -r L_PP L_TG < <(llama_bench "$MODEL" 512 128 "$REPS")
read -r I_PP I_TG < <(inferd_pair "$REPS" 512 128 --model "$MODEL")
row "prefill, 512-token prompt" "$L_PP" "$I_PP" "tok/s"
row "decode, 1 sequence, 128 tokens" "$L_TG" "$I_TG" "tok/s"
# Decode at context 512-640 (after a 512-token prompt), inferd only.
CTX=()
for _ in $(seq "$REPS"); do
  j=$("$INFERD" bench latency --model "$MODEL" --threads "$THREADS" --batch-size 1 --input-len 512 --output-len 129 \
      --num-iters 1 --json 2>>"$OUT/inferd.log")
  CTX+=("$(json_get "$j" decode_tokens_per_s)")
done
I_TG512=$(median "${CTX[@]}")

# Bandwidth ceiling: read bandwidth over a buffer of the model's size, by the weight bytes.
MODEL_BYTES=$(stat -c %s "$MODEL")
MIB=$(( (MODEL_BYTES + 1048575) / 1048576 ))
BW=$(INFERD_BENCH_BW_MIB=$MIB "$KBENCH" --benchmark_filter="BM_ReadBandwidth/MiB:$MIB/" \
     --benchmark_min_time=0.5 --benchmark_format=json 2>>"$OUT/kbench.log" |
     python3 -c 'import json,sys; print([b["bytes_per_second"] for b in json.load(sys.stdin)["benchmarks"]][0])')
CEILING=$(python3 -c "print($BW / $MODEL_BYTES)")

# Batched: 64 sequences of 128 in / 128 out.
"$LLAMACPP_BATCHED_BENCH" -m "$MODEL" -t "$THREADS" -c 16384 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 64 \
  --output-format jsonl >"$OUT/llama-batched.jsonl" 2>"$OUT/llama-batched.log"
L_BATCH=$(python3 - "$OUT/llama-batched.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("pl") == 64:
            print(r["pl"] * r["tg"] / r["t"])  # output tokens per second of wall time
EOF
)
BATCH=()
for _ in $(seq "$REPS"); do
  j=$("$INFERD" bench throughput --model "$MODEL" --threads "$THREADS" --num-prompts 64 --input-len 128 \
      --output-len 128 --max-num-seqs 64 --json 2>>"$OUT/inferd.log")
  BATCH+=("$(json_get "$j" output_tokens_per_s)")
done
row "64 sequences 128/128, output (wall)" "$L_BATCH" "$(median "${BATCH[@]}")" "tok/s"

# Serving.
if [ "$SERVE" = 1 ]; then
  OUT_DIR="$OUT/serve" INFERD="$INFERD" bench/serve_vs_llamacpp.sh --model "$MODEL" --threads "$THREADS" \
    --num-prompts 64 --max-concurrency 32 --input-len 128 --output-len 128 >"$OUT/serve.txt" 2>&1 || true
  if [ -f "$OUT/serve/llama-server.json" ] && [ -f "$OUT/serve/inferd.json" ]; then
    for key in output_throughput p99_ttft_ms median_ttft_ms; do
      a=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$OUT/serve/llama-server.json" $key)
      b=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$OUT/serve/inferd.json" $key)
      case $key in
        output_throughput) row "serving 32 concurrent, output tok/s" "$a" "$b" "tok/s" ;;
        p99_ttft_ms) row "serving 32 concurrent, TTFT p99" "$a" "$b" "ms" ;;
        median_ttft_ms) row "serving 32 concurrent, TTFT median" "$a" "$b" "ms" ;;
      esac
    done
  fi
fi

# --- Llama-2-7B shape, random weights --------------------------------------------------------
if [ "$WITH_7B" = 1 ]; then
  CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/models
  mkdir -p "$CACHE"
  for t in ${TYPES_7B//,/ }; do
    F="$CACHE/llama-2-7b-dummy.$t.gguf"
    [ -s "$F" ] || python3 bench/make_dummy_gguf.py --shape llama-2-7b --type "$t" --out "$F" >&2
    read -r LP LT < <(llama_bench "$F" 128 32 1)
    read -r IP IT < <(inferd_pair 1 128 32 --model "$F")
    row "7B $t prefill, 128-token prompt" "$LP" "$IP" "tok/s"
    row "7B $t decode, 32 tokens" "$LT" "$IT" "tok/s"
  done
fi

python3 - "$ROWS" "$I_TG" "$I_TG512" "$CEILING" "$BW" "$MODEL_BYTES" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
i_tg, i_tg512, ceiling, bw, nbytes = map(float, sys.argv[2:])
W = max(len(f"{r[0]} ({r[3]})") for r in rows) + 2
print(f"{'':{W}}{'llama.cpp':>12}{'inferd':>12}{'inferd/llama':>14}")
for name, l, i, unit in rows:
    l, i = float(l), float(i)
    better = (i / l) if unit != "ms" else (l / i)
    suffix = "x" if unit != "ms" else "x (lower is better: llama/inferd)"
    print(f"{name + ' (' + unit + ')':{W}}{l:12.1f}{i:12.1f}{better:13.2f}{suffix}")
print(f"decode at context 512-640 (inferd): {i_tg512:.1f} tok/s")
print(f"bandwidth ceiling: {bw / 1e9:.1f} GB/s read over {nbytes / 2**20:.0f} MiB -> {ceiling:.0f} tok/s;"
      f" inferd decode = {100 * i_tg / ceiling:.0f}% of it ({100 * i_tg512 / ceiling:.0f}% at context 512)")
EOF
[ "$SERVE" = 1 ] && sed -n '/llama-server *inferd/,$p' "$OUT/serve.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
