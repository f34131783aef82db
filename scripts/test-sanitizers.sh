#!/usr/bin/env bash
# The sanitizer pass (not part of scripts/test.sh: it takes ~30 minutes on 2 cores).
#   scripts/test-sanitizers.sh [asan|tsan]...   default: asan tsan
# asan: ASan + UBSan build, its unit tests, then the server end-to-end tests (tests/e2e)
#       against the ASan inferd; any report makes the server exit non-zero, which the
#       e2e fixtures check at shutdown.
# tsan: TSan build and its unit tests (the engine, scheduler and server threads).
# Results of the runs are recorded in docs/hostile-input.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESETS=("$@")
[ "${#PRESETS[@]}" -eq 0 ] && PRESETS=(asan tsan)
export INFERD_MODEL=${INFERD_MODEL:-$(./scripts/fetch-model.sh)}
TESTDATA=${INFERD_TESTDATA_DIR:-$(cd .. && pwd)/shared/testdata}
export INFERD_TESTDATA_DIR="$TESTDATA"
# Leaks at exit are reported (and fail) in the unit tests; halt_on_error stops at the first
# report so that it is not lost among later ones.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
for p in "${PRESETS[@]}"; do
  echo "== $p: build"
  ./scripts/build.sh "$p"
  echo "== $p: unit tests (ctest)"
  ctest --preset "$p" -j "$(nproc)"
  if [ "$p" = asan ]; then
    echo "== asan: server end-to-end tests against build/asan/src/cli/inferd"
    INFERD_BUILD_DIR=build/asan python3 -m pytest tests/e2e -q
  fi
done
