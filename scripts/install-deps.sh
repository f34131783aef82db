#!/usr/bin/env bash
# Installs the dependencies of inferd on Debian 12 (apt-get + pip).
#   scripts/install-deps.sh           everything: build, tests, references (README's test command)
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
)
# Testing: clang for the fuzzers, a real Prometheus and a real browser for e2e tests.
APT_TEST=(
  clang libclang-rt-14-dev
  prometheus
  chromium
)
PIP_TEST=(pytest numpy jinja2 openai requests safetensors diskcache typing_extensions gguf prometheus_client
  pybind11 scikit-build-core tqdm)  # the last three: the Python package (pip install . --no-build-isolation)

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
echo "[install-deps] ok"
