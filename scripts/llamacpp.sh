#!/usr/bin/env bash
# Builds llama.cpp, inferd's independent numerical reference, from the llama-cpp-python
# source distribution on PyPI (it vendors llama.cpp under vendor/llama.cpp and carries the
# `llama_cpp` ctypes bindings, which tests/reference uses without pip-installing them).
#
# Usage:
#   scripts/llamacpp.sh                # libllama + llama-perplexity + llama-tokenize
#   scripts/llamacpp.sh --with-bench   # also llama-bench, llama-batched-bench, llama-server,
#                                      # llama-quantize
#   eval "$(scripts/llamacpp.sh)"      # stdout is `export VAR=...` lines (also in env.sh)
#
# Layout (outside the repository; llama.cpp code is never committed):
#   ${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/llama.cpp-<version>/
#     src/      unpacked sdist: llama_cpp/ (Python bindings), vendor/llama.cpp/
#     build/    CMake + Ninja build; binaries and shared libraries in build/bin/
#     env.sh    exports for the paths below; `source` it
#     .stamp-core, .stamp-bench   written after a successful build of each target set
#
# Idempotent: when the stamp for the requested set exists it only prints the exports.
# Logs go to stderr. Parallelism: INFERD_LLAMACPP_JOBS (default 2).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36   # pinned; newest on PyPI that builds here (2026-11)

WITH_BENCH=0
for arg in "$@"; do
  case "$arg" in
    --with-bench) WITH_BENCH=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "llamacpp.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}
ROOT="$CACHE/llama.cpp-$LLAMA_CPP_PYTHON_VERSION"
SRC="$ROOT/src"
BUILD="$ROOT/build"
BIN="$BUILD/bin"
ENV_FILE="$ROOT/env.sh"
JOBS=${INFERD_LLAMACPP_JOBS:-2}
PY=${PYTHON:-python3}

CORE_TARGETS=(llama llama-perplexity llama-tokenize)
BENCH_TARGETS=(llama-bench llama-batched-bench llama-server llama-quantize)

log() { echo "[llamacpp] $*" >&2; }

write_env() {
  cat > "$ENV_FILE.tmp" <<EOF
export LLAMACPP_VERSION=$LLAMA_CPP_PYTHON_VERSION
export LLAMACPP_DIR=$ROOT
export LLAMACPP_BIN_DIR=$BIN
export LLAMACPP_LIB_DIR=$BIN
export LLAMACPP_PY_DIR=$SRC
export LLAMA_CPP_LIB_PATH=$BIN
export LLAMACPP_PERPLEXITY=$BIN/llama-perplexity
export LLAMACPP_TOKENIZE=$BIN/llama-tokenize
EOF
  if [ -f "$ROOT/.stamp-bench" ]; then
    cat >> "$ENV_FILE.tmp" <<EOF
export LLAMACPP_BENCH=$BIN/llama-bench
export LLAMACPP_BATCHED_BENCH=$BIN/llama-batched-bench
export LLAMACPP_SERVER=$BIN/llama-server
export LLAMACPP_QUANTIZE=$BIN/llama-quantize
EOF
  fi
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# CPU features: -march=native, except on CPUs with AMX. There ggml's AMX matmul crashes
# (SIGSEGV at ldtilecfg in ggml_backend_amx_mul_mat, llama.cpp of llama-cpp-python 0.3.36,
# seen on a 2-core Xeon VM where AMX itself works after ARCH_REQ_XCOMP_PERM), so we list
# every other feature the CPU has instead of -march=native.
ARCH_OPTS=(-DGGML_NATIVE=ON)
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  has() { grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1" && echo ON || echo OFF; }
  ARCH_OPTS=(-DGGML_NATIVE=OFF -DGGML_SSE42="$(has sse4_2)" -DGGML_AVX="$(has avx)" -DGGML_AVX2="$(has avx2)"
    -DGGML_BMI2="$(has bmi2)" -DGGML_FMA="$(has fma)" -DGGML_F16C="$(has f16c)" -DGGML_AVX_VNNI="$(has avx_vnni)"
    -DGGML_AVX512="$(has avx512bw)" -DGGML_AVX512_VBMI="$(has avx512vbmi)" -DGGML_AVX512_VNNI="$(has avx512_vnni)"
    -DGGML_AVX512_BF16="$(has avx512_bf16)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi
is_done() {
  [ "$(cat "$BUILD/.arch" 2>/dev/null)" = "${ARCH_OPTS[*]}" ] || return 1
  [ -f "$ROOT/.stamp-core" ] && [ -f "$BIN/libllama.so" ] || return 1
  if [ "$WITH_BENCH" -eq 1 ]; then
    [ -f "$ROOT/.stamp-bench" ] || return 1
    # A stamp from before a tool joined BENCH_TARGETS does not cover it.
    for t in "${BENCH_TARGETS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
  fi
  return 0
}

# Fast path: nothing to do.
if is_done && [ -f "$ENV_FILE" ]; then
  cat "$ENV_FILE"
  exit 0
fi

mkdir -p "$ROOT"
# One build at a time per cache dir (several test scripts may call this concurrently).
exec 9>"$ROOT/.lock"
flock 9
if is_done; then write_env; cat "$ENV_FILE"; exit 0; fi

START=$(date +%s)

# 1. Source: the sdist from PyPI, unpacked once.
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
  tmp=$(mktemp -d "$ROOT/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "pip download llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist)"
  "$PY" -m pip download -q --no-binary :all: --no-deps -d "$tmp" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
  tarball=$(find "$tmp" -maxdepth 1 -name "llama_cpp_python-*.tar.gz" | head -n1)
  [ -n "$tarball" ] || { log "sdist not found after pip download"; exit 1; }
  tar xzf "$tarball" -C "$tmp"
  rm -rf "$SRC"
  mv "$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION" "$SRC"
  rm -rf "$tmp"
  trap - EXIT
fi

# 2. Configure (once). Shared libs so the ctypes binding can load libllama.so from build/bin;
#    no curl/openssl (no network at run time), no tests/examples; server only for --with-bench
#    (it is the slowest tool to compile), and never fetch its prebuilt web UI.
SERVER=OFF
if [ "$WITH_BENCH" -eq 1 ]; then SERVER=ON; fi
if [ ! -f "$BUILD/build.ninja" ] || \
   ! grep -q "^LLAMA_BUILD_SERVER:BOOL=$SERVER" "$BUILD/CMakeCache.txt" 2>/dev/null || \
   [ "$(cat "$BUILD/.arch" 2>/dev/null)" != "${ARCH_OPTS[*]}" ]; then
  log "cmake configure (server=$SERVER; ${ARCH_OPTS[*]})"
  rm -f "$ROOT/.stamp-core" "$ROOT/.stamp-bench"
  cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON \
    "${ARCH_OPTS[@]}" \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_SERVER=$SERVER -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_ALL_WARNINGS=OFF \
    >"$ROOT/configure.log" 2>&1 || { tail -n 40 "$ROOT/configure.log" >&2; exit 1; }
  echo "${ARCH_OPTS[*]}" > "$BUILD/.arch"
fi

# 3. Build only what is needed.
TARGETS=("${CORE_TARGETS[@]}")
if [ "$WITH_BENCH" -eq 1 ]; then TARGETS+=("${BENCH_TARGETS[@]}"); fi
log "building ${TARGETS[*]} with -j$JOBS (several minutes on 2 cores; log: $ROOT/build.log)"
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >"$ROOT/build.log" 2>&1 || {
  tail -n 40 "$ROOT/build.log" >&2; exit 1; }

for t in llama-perplexity llama-tokenize libllama.so; do
  [ -e "$BIN/$t" ] || { log "missing $BIN/$t after build"; exit 1; }
done
if [ "$WITH_BENCH" -eq 1 ]; then
  for t in "${BENCH_TARGETS[@]}"; do
    [ -x "$BIN/$t" ] || { log "missing $BIN/$t after build"; exit 1; }
  done
fi
date -u +%FT%TZ > "$ROOT/.stamp-core"
if [ "$WITH_BENCH" -eq 1 ]; then date -u +%FT%TZ > "$ROOT/.stamp-bench"; fi
write_env
log "done in $(( $(date +%s) - START )) s"
cat "$ENV_FILE"
