#!/usr/bin/env bash
# Prepares .devcarry/ (git-ignored) for a GPU machine that has nvcc, CUDA and Python but
# none of inferd's build dependencies: the CUDA build of inferd and its GPU test binaries
# for one architecture (default sm_90: H100 / H200), stripped; the Debian shared libraries
# they load; a real model that fits the 64 MiB a device call may carry (the embedded
# SmolLM2 cut to its first layers by bench/truncate_gguf.py); and the gguf wheel for
# bench/make_dummy_gguf.py. bench/cuda-check.sh runs everything there.
#   scripts/device-bundle.sh [--arch 90] [--layers 4]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=90
LAYERS=4
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
B=build/cuda-sm$ARCH
if [ ! -f "$B/build.ninja" ]; then
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFERD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -DINFERD_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$B" -j "${INFERD_BUILD_JOBS:-$(nproc)}" --target inferd test_cuda_kernels test_cuda_sampling test_cuda_backend
rm -rf .devcarry
mkdir -p .devcarry/bin .devcarry/lib .devcarry/whl
cp "$B/src/cli/inferd" "$B"/tests/unit/backend/cuda/test_cuda_{kernels,sampling} "$B/tests/unit/engine_cuda/test_cuda_backend" \
  .devcarry/bin/
strip .devcarry/bin/*
# Shared libraries from Debian packages (the CUDA ones and the C/C++ runtime are there).
for bin in .devcarry/bin/*; do ldd "$bin"; done | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libgcc_s*|libstdc++*|libpthread*|libdl*|librt*|ld-linux*|libcuda*|libcublas*|libcudart*) ;;
    *) cp -L "$lib" .devcarry/lib/ ;;
  esac
done
MODEL=${INFERD_MODEL:-$(./scripts/fetch-model.sh)}
python3 bench/truncate_gguf.py --layers "$LAYERS" --embd-type q4_0 "$MODEL" .devcarry/model.gguf >/dev/null
cp ../shared/testdata/tokenizer/ggml-vocab-llama-spm.gguf .devcarry/vocab-llama-spm.gguf
python3 -m pip download -q --no-deps --only-binary=:all: -d .devcarry/whl "gguf==$(python3 -c 'import importlib.metadata as m; print(m.version("gguf"))')"
du -sh .devcarry .devcarry/* | sed 's/^/  /'
total=$(du -sm .devcarry | cut -f1)
if [ "$total" -gt 60 ]; then echo "warning: .devcarry is ${total} MiB; a device call carries 64 MiB in all" >&2; fi
