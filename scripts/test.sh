#!/usr/bin/env bash
# README's second command: installs dependencies, fetches the embedded model, builds
# inferd and runs every test: unit tests (ctest), CLI end-to-end tests, the comparisons
# against llama.cpp, the Python package and the server end to end (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# Tokenizer vectors and chat templates live beside the repository (../shared/testdata).
TESTDATA=${INFERD_TESTDATA_DIR:-$(cd .. && pwd)/shared/testdata}
if [ ! -d "$TESTDATA/tokenizer" ]; then
  echo "error: test data not found at $TESTDATA (expected ../shared/testdata beside the repository," >&2
  echo "       or set INFERD_TESTDATA_DIR)" >&2
  exit 1
fi
export INFERD_MODEL=${INFERD_MODEL:-$(./scripts/fetch-model.sh)}
# The second real model (Gemma 3 270M Q4_K_M): tests/reference/test_gemma3.py, tests/e2e.
export INFERD_GEMMA3_MODEL=${INFERD_GEMMA3_MODEL:-$(./scripts/fetch-model.sh gemma3)}
export INFERD_TESTDATA_DIR="$TESTDATA"
# ccache for every build below (CMake, and pip's scikit-build) when it is installed.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_CUDA_COMPILER_LAUNCHER=ccache
fi
export INFERD_BUILD_DIR=${INFERD_BUILD_DIR:-build/release}
./scripts/build.sh release

echo "== unit tests (ctest)"
ctest --preset release -j "$(nproc)"

NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -n "$NVCC" ]; then
  echo "== CUDA backend: cmake --preset cuda (nvcc for sm_80/89/90/120); its GPU tests skip without a GPU"
  ./scripts/build.sh cuda inferd test_cuda_kernels test_cuda_sampling test_cuda_backend
  export INFERD_CUDA_BUILD_DIR=build/cuda
  for t in build/cuda/tests/unit/backend/cuda/test_cuda_* build/cuda/tests/unit/engine_cuda/test_cuda_backend; do
    if [ -x "$t" ]; then "$t" --gtest_brief=1; fi
  done
else
  echo "== CUDA backend not built: nvcc not found (install the CUDA toolkit to build it)"
fi

echo "== fuzz smoke: every libFuzzer target over its seeds plus 20000 runs (ASan + UBSan; docs/fuzzing.md)"
./scripts/test-fuzz.sh

echo "== reference tests against llama.cpp (pytest)"
./scripts/test-reference.sh

echo "== command-line end-to-end tests (pytest)"
python3 -m pytest tests/cli -q

echo "== Python package: pip install . (the engine as extension inferd._C, incremental in build/python) and its tests (pytest)"
CMAKE_BUILD_PARALLEL_LEVEL=${INFERD_BUILD_JOBS:-$(nproc)} \
  python3 -m pip install --no-build-isolation --root-user-action=ignore -q .
python3 -m pytest tests/python -q

echo "== server end-to-end tests: openai client, raw HTTP, lifecycle, Prometheus (pytest)"
python3 -m pytest tests/e2e -q

echo "== deploy manifests and dashboard (pytest)"
python3 -m pytest tests/deploy -q
