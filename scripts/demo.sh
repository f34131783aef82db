#!/usr/bin/env bash
# Installs dependencies, fetches the embedded model, builds inferd
# and generates text with it. Extra arguments go to `inferd generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >&2
MODEL=$(./scripts/fetch-model.sh)
./scripts/build.sh release >&2
if [ "$#" -eq 0 ]; then
  set -- --prompt "The capital of France is" --prompt "def fibonacci(n):" --max-tokens 32 --temperature 0
fi
exec build/release/src/cli/inferd generate --model "$MODEL" "$@"
