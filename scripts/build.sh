#!/usr/bin/env bash
# Configures and builds a CMake preset (default: release), all targets or the ones named.
# Usage: scripts/build.sh [PRESET [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-release}
shift || true
TARGETS=()
for t in "$@"; do TARGETS+=(--target "$t"); done
JOBS=${INFERD_BUILD_JOBS:-$(nproc)}
if [ ! -f "build/$PRESET/build.ninja" ]; then
  cmake --preset "$PRESET" >/dev/null
fi
cmake --build --preset "$PRESET" -j "$JOBS" "${TARGETS[@]}"
