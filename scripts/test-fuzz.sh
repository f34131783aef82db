#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan + coverage) and runs
# each one briefly over its committed seeds, as a smoke test in README's test command.
# The long campaigns (>= 1M executions each) and what they found are in docs/fuzzing.md.
#
#   scripts/test-fuzz.sh [RUNS]     RUNS executions per target after the seeds (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${INFERD_FUZZ_RUNS:-20000}}
TARGETS=(fuzz_gguf fuzz_safetensors fuzz_torch fuzz_http fuzz_jinja fuzz_request fuzz_tokenizer fuzz_json_schema fuzz_grpc)
./scripts/build.sh fuzz "${TARGETS[@]}"
export INFERD_MODEL=${INFERD_MODEL:-$(./scripts/fetch-model.sh)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
  seeds=tests/fuzz/corpus/${t#fuzz_}
  mkdir -p "$WORK/$t"
  # The first directory collects new inputs; the committed seeds stay read-only. Crashes,
  # leaks, timeouts and OOMs fail the run (libFuzzer exits non-zero) and leave the input
  # in $WORK, printed below.
  if ! build/fuzz/tests/fuzz/"$t" -runs="$RUNS" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$WORK/$t/" "$WORK/$t" "$seeds" > "$WORK/$t.log" 2>&1; then
    tail -40 "$WORK/$t.log" >&2
    echo "error: $t failed; the input is in $WORK/$t (kept)" >&2
    trap - EXIT
    exit 1
  fi
  echo "$t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$WORK/$t.log" | tail -1)"
done
