#!/usr/bin/env bash
# Installs the dependencies of inferd on Debian 12 (apt-get + pip).
#   scripts/install-deps.sh           everything: build, tests, references (README's test command),
#                                     torch + transformers + peft on the CPU included
#   scripts/install-deps.sh --serve   only what building and serving need (README's first command)
# Idempotent: skips work that is already done, so it is quick on a prepared machine.
set -euo pipefail

MODE=${1:-all}

# Building inferd (the release preset also configures its unit tests, hence GoogleTest).
APT_BUILD=(
  build-essential cmake ninja-build pkg-config git curl unzip ca-certificates ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libpcre2-dev libsentencepiece-dev sentencepiece
  libcli11-dev libspdlog-dev libfmt-dev libboost-dev
  libgrpc++-dev protobuf-compiler  # the gRPC API (--grpc-port; protoc writes the descriptor reflection serves)
  protobuf-compiler-grpc  # grpc_cpp_plugin: Debian's gRPC CMake config fails without it (not a Depends of libgrpc++-dev)
)
# Testing: clang for the fuzzers, a real Prometheus and a real browser for e2e tests.
APT_TEST=(
  clang libclang-rt-14-dev
  prometheus
  chromium chromium-driver  # the chat page test (selenium drives Debian's browser)
)
PIP_TEST=(pytest numpy jinja2 openai requests safetensors diskcache typing_extensions gguf prometheus_client jsonschema
  pybind11 scikit-build-core tqdm  # these three: the Python package (pip install . --no-build-isolation)
  kubernetes-validate jsonpatch pyyaml  # these three: tests/deploy (Kubernetes manifests, kustomize patches)
  websockets selenium  # GET /v1/ws and the chat page (tests/e2e)
  grpcio grpcio-tools grpcio-health-checking grpcio-reflection)  # the gRPC API (tests/e2e/test_grpc.py)

APT_PKGS=("${APT_BUILD[@]}")
PIP_PKGS=()
if [ "$MODE" != "--serve" ]; then
  APT_PKGS+=("${APT_TEST[@]}")
  PIP_PKGS+=("${PIP_TEST[@]}")
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[install-deps] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's prometheus package enables a system service on :9090. The tests start their
  # own Prometheus on a free port (tests/e2e/prometheus.py) and need no service, so one we
  # just installed is stopped and disabled; one that was already installed is left alone.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

PY=${PYTHON:-python3}
need_pip=0
for p in "${PIP_PKGS[@]}"; do
  "$PY" -c "import importlib.metadata as m; m.version('$p')" 2>/dev/null || need_pip=1
done
if [ "$need_pip" -eq 1 ]; then
  echo "[install-deps] pip install ${PIP_PKGS[*]}"
  "$PY" -m pip install -q "${PIP_PKGS[@]}"
fi

# The reference implementations of the model families (tests/reference/test_transformers.py):
# torch on the CPU and transformers, plus peft. PyPI's torch pulls ~3 GB of CUDA wheels; where
# the CUDA 13 toolkit with cuDNN 9 is on the loader path (this project's machines), the torch
# wheel without them plus the four CUDA libraries the toolkit lacks imports as well (~1.2 GB).
# If that import fails, torch is installed plainly with every dependency.
# transformers, peft and accelerate go in with --no-deps and their own dependencies listed,
# because pip would otherwise complete torch's CUDA requirements.
TORCH=torch==2.15.0
TORCH_CUDA_EXTRA=(nvidia-cusparselt-cu13==0.8.1 nvidia-nvshmem-cu13==3.7.2 nvidia-cufile==1.20.0.107 nvidia-nccl-cu13==2.30.7)
TORCH_DEPS=(sympy networkx filelock fsspec typing_extensions jinja2 "setuptools>=77.0.3")
HF_PKGS=(transformers==5.23.0 peft==0.21.2 accelerate==1.15.0)
HF_DEPS=("huggingface-hub>=1.31.0,<3.0" "tokenizers>=0.23.1,<0.24.0" "regex>=2025.10.22" typer pyyaml psutil
  packaging tqdm "safetensors>=0.8.0" numpy)
if [ "$MODE" != "--serve" ] && ! "$PY" -c "import torch, transformers, peft" 2>/dev/null; then
  if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[install-deps] pip install --no-deps $TORCH ${TORCH_CUDA_EXTRA[*]} (CPU use; CUDA libraries from the toolkit)"
    "$PY" -m pip install -q --no-deps "$TORCH" "${TORCH_CUDA_EXTRA[@]}"
    "$PY" -m pip install -q "${TORCH_DEPS[@]}"
    if ! "$PY" -c "import torch" 2>/dev/null; then
      echo "[install-deps] torch does not import without its CUDA wheels: pip install $TORCH"
      "$PY" -m pip install -q "$TORCH"
    fi
  fi
  echo "[install-deps] pip install --no-deps ${HF_PKGS[*]}"
  "$PY" -m pip install -q --no-deps "${HF_PKGS[@]}"
  "$PY" -m pip install -q "${HF_DEPS[@]}"
  "$PY" -c "import torch, transformers, peft"
fi
# XGrammar's C++ source (structured outputs), built inside inferd's CMake build.
"$(dirname "$0")/fetch-xgrammar.sh" >/dev/null
echo "[install-deps] ok"
