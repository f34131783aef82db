#!/usr/bin/env bash
# Every GGUF weight type side by side with llama.cpp, in one run on one machine: the source
# model is re-quantized with llama-quantize --pure to each type (cached under
# ~/.cache/inferd/quant-types/), then per type
#   prefill  llama-bench pp512      vs  inferd bench latency --batch-size 1, 512-token prompt
#   decode   llama-bench tg128      vs  inferd bench latency --batch-size 1, 128 tokens after 1
# medians of --reps runs each, printed as a Markdown table (type, tensor types in the file,
# both engines, ratios). Sources:
#   --source embedded   the embedded SmolLM2-135M (its 576-wide rows make llama-quantize fall
#                       back to 32-blocks for K-quants: see the tensor-type column)
#   --source small-256  a 0.4B model of random weights whose widths are multiples of 256
#                       (bench/make_dummy_gguf.py --shape small-256), so K-quants stay K-quants
#   --source FILE.gguf  any F16/F32 GGUF
# Usage: bench/quant-types.sh [--source S] [--types q4_0,q4_K,...] [--reps N] [--threads T]
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=embedded REPS=3 THREADS=$(nproc)
TYPES=f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q2_K,q3_K,q4_K,q5_K,q6_K,iq4_nl,iq4_xs
while [ $# -gt 0 ]; do
  case "$1" in
    --source) SOURCE=$2; shift 2 ;;
    --types) TYPES=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
INFERD=${INFERD:-build/release/src/cli/inferd}
[ -x "$INFERD" ] || { echo "error: $INFERD not built (scripts/build.sh release)" >&2; exit 1; }
./scripts/llamacpp.sh --with-bench >&2
# shellcheck disable=SC1090
source "${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/llama.cpp-0.3.36/env.sh"
CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/quant-types
mkdir -p "$CACHE"
LOG=$(mktemp -d /tmp/quant-types.XXXXXX)

case "$SOURCE" in
  embedded)
    SRC="$CACHE/smollm2-135m.f16.gguf"
    [ -s "$SRC" ] || "$LLAMACPP_QUANTIZE" --allow-requantize "$(./scripts/fetch-model.sh)" "$SRC" F16 >"$LOG/src.log" 2>&1 ;;
  small-256)
    SRC="$CACHE/small-256.f16.gguf"
    [ -s "$SRC" ] || python3 bench/make_dummy_gguf.py --shape small-256 --type f16 --out "$SRC" >&2 ;;
  *) SRC=$SOURCE ;;
esac
NAME=$(basename "$SRC" .gguf)

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
json_get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
tensor_types() {  # the 2-D tensor types of a file, most common first: "q4_K 120, q6_K 24"
  python3 - "$1" <<'PY'
import collections, sys, gguf
c = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(sys.argv[1]).tensors if len(t.shape) > 1)
print(", ".join(f"{k.lower().replace('_k', '_K')} {v}" for k, v in c.most_common()))
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load before:" \
     "$(cut -d' ' -f1-3 /proc/loadavg); source $SRC; threads $THREADS; reps $REPS; logs $LOG" >&2
echo "| type | tensors | prefill llama.cpp | prefill inferd | ratio | decode llama.cpp | decode inferd | ratio |"
echo "|---|---|---|---|---|---|---|---|"
for t in ${TYPES//,/ }; do
  F="$CACHE/$NAME.$t.gguf"
  if [ ! -s "$F" ]; then
    QT=$(echo "$t" | tr a-z A-Z)
    "$LLAMACPP_QUANTIZE" --allow-requantize --pure "$SRC" "$F" "$QT" >"$LOG/quantize.$t.log" 2>&1 ||
      { echo "| $t | llama-quantize failed ($LOG/quantize.$t.log) |"; continue; }
  fi
  read -r LPP LTG < <("$LLAMACPP_BENCH" -m "$F" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json 2>>"$LOG/llama-bench.log" |
    python3 -c '
import json, sys
rows = json.load(sys.stdin)
print([r["avg_ts"] for r in rows if r["n_gen"] == 0][0], [r["avg_ts"] for r in rows if r["n_prompt"] == 0][0])')
  PPS=() TGS=()
  for _ in $(seq "$REPS"); do
    j=$("$INFERD" bench latency --model "$F" --threads "$THREADS" --batch-size 1 --input-len 512 --output-len 2 \
        --num-iters 1 --max-num-batched-tokens 512 --json 2>>"$LOG/inferd.log")
    PPS+=("$(json_get "$j" prefill_tokens_per_s)")
    j=$("$INFERD" bench latency --model "$F" --threads "$THREADS" --batch-size 1 --input-len 1 --output-len 129 \
        --num-iters 1 --json 2>>"$LOG/inferd.log")
    TGS+=("$(json_get "$j" decode_tokens_per_s)")
  done
  IPP=$(median "${PPS[@]}") ITG=$(median "${TGS[@]}")
  python3 - "$t" "$(tensor_types "$F")" "$LPP" "$IPP" "$LTG" "$ITG" <<'PY'
import sys
t, types, lpp, ipp, ltg, itg = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
print(f"| {t} | {types} | {lpp:.1f} | {ipp:.1f} | {ipp / lpp:.2f}x | {ltg:.1f} | {itg:.1f} | {itg / ltg:.2f}x |")
PY
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
