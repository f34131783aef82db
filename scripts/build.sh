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
# ccache (installed by install-deps.sh) makes rebuilds of unchanged sources instant: across
# presets that share flags, and across CI runs when ~/.cache survives. CMake reads these.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER:-ccache}
  export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
  export CMAKE_CUDA_COMPILER_LAUNCHER=${CMAKE_CUDA_COMPILER_LAUNCHER:-ccache}
fi
if [ ! -f "build/$PRESET/build.ninja" ]; then
  cmake --preset "$PRESET" >/dev/null
fi
cmake --build --preset "$PRESET" -j "$JOBS" "${TARGETS[@]}"
