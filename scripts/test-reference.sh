#!/usr/bin/env bash
# Runs tests/reference: inferd's numerics against independent references (llama.cpp, numpy).
#
# Usage: scripts/test-reference.sh [--strict] [pytest args...]
#   Builds llama.cpp first if needed (scripts/llamacpp.sh; minutes the first time, < 1 s after),
#   fetches the embedded model and Gemma 3 270M if needed (scripts/fetch-model.sh), then
#   runs pytest.
#   --strict (implied when CI is set): a missing model, inferd binary or llama.cpp build
#   fails the tests instead of skipping them.
# Environment: INFERD_BUILD_DIR (default build/release), INFERD_MODEL, INFERD_CACHE_DIR,
#   PYTHON. Measured figures are printed in the summary and written to
#   build/reference/llamacpp.json (INFERD_REFERENCE_REPORT). The F32 copy of the model used
#   for the strict llama.cpp comparisons is cached in build/reference/*.f32.gguf (~0.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--strict" ]; then
  export INFERD_REFERENCE_STRICT=1
  shift
elif [ -n "${CI:-}" ]; then
  export INFERD_REFERENCE_STRICT=${INFERD_REFERENCE_STRICT:-1}
fi

eval "$(scripts/llamacpp.sh)"
export INFERD_MODEL=${INFERD_MODEL:-$(scripts/fetch-model.sh)}
export INFERD_GEMMA3_MODEL=${INFERD_GEMMA3_MODEL:-$(scripts/fetch-model.sh gemma3)}  # tests/reference/test_gemma3.py
export INFERD_BUILD_DIR=${INFERD_BUILD_DIR:-build/release}

# Single-threaded OpenBLAS for the numpy references (threads thrash on a shared 2-core box).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

PY=${PYTHON:-python3}
exec "$PY" -m pytest tests/reference -q -rs "$@"
