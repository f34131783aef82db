#!/usr/bin/env bash
# README's second command: installs dependencies, fetches the embedded model, builds
# inferd and runs every test: unit tests (ctest), CLI end-to-end tests and the
# comparisons against llama.cpp (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export INFERD_MODEL=${INFERD_MODEL:-$(./scripts/fetch-model.sh)}
export INFERD_BUILD_DIR=${INFERD_BUILD_DIR:-build/release}
./scripts/build.sh release

echo "== unit tests (ctest)"
ctest --preset release -j "$(nproc)"

echo "== reference tests against llama.cpp (pytest)"
./scripts/test-reference.sh

echo "== command-line end-to-end tests (pytest)"
python3 -m pytest tests/cli -q
