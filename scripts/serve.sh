#!/usr/bin/env bash
# README's first command: installs dependencies, fetches the embedded model, builds inferd
# and starts the OpenAI-compatible server on it (port 8000). Extra arguments go to
# `inferd serve`, e.g. ./scripts/serve.sh --port 9000 --api-key sekret
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --serve >&2
MODEL=$(./scripts/fetch-model.sh)
# Only the server binary: the test binaries and tools wait for scripts/test.sh.
./scripts/build.sh release inferd >&2
export INFERD_MODEL="$MODEL"
exec build/release/src/cli/inferd serve "$@"
