"""Shared fixtures for tests/reference: numerics against independent references.

Environment (all optional; scripts/test-reference.sh sets them):
  INFERD_MODEL           GGUF model (default ~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf)
  INFERD_BUILD_DIR       inferd build dir (default <repo>/build/release); CLI at src/cli/inferd
  INFERD_CACHE_DIR       cache root (default ~/.cache/inferd)
  LLAMACPP_DIR, LLAMACPP_BIN_DIR, LLAMACPP_PY_DIR, LLAMA_CPP_LIB_PATH
                         llama.cpp build (written by scripts/llamacpp.sh into its env.sh);
                         when unset, the env.sh of the pinned version in the cache is read
  INFERD_REFERENCE_STRICT=1
                         a missing model / inferd binary / llama.cpp build FAILS the test
                         instead of skipping it (CI sets this through test-reference.sh)
  INFERD_REFERENCE_REPORT
                         where measured figures go (default <repo>/build/reference/llamacpp.json)

The strict llama.cpp comparisons run on an F32 copy of the model (f32_model_path: built once
into build/reference/, keyed by the source's size and mtime), where llama.cpp's arithmetic is
not lossy; see test_llamacpp_logits.py.

Measured figures (perplexities, agreement rates, logit diffs) are recorded with the
`reference_report` fixture; they are printed in pytest's terminal summary (no -s needed)
and written as JSON, because they go into the release notes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# numpy's OpenBLAS threads spin against each other (and against the engines under test) on
# a small shared machine: a 20-token float64 forward took 5.7 s with them vs 0.2 s without.
# Must be set before numpy is first imported.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import inferd_build  # noqa: E402  (tests/support: also for this directory's test modules)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

_FIGURES: dict[str, dict] = {}


def _strict() -> bool:
    return os.environ.get("INFERD_REFERENCE_STRICT", "") not in ("", "0")


def missing(what: str):
    """Skips the test (fails it under INFERD_REFERENCE_STRICT=1) because `what` is missing."""
    if _strict():
        pytest.fail(f"INFERD_REFERENCE_STRICT=1 and {what}", pytrace=False)
    pytest.skip(what)


def _cache_dir() -> Path:
    return Path(os.environ.get("INFERD_CACHE_DIR", Path.home() / ".cache" / "inferd"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_path() -> Path:
    p = Path(os.environ.get("INFERD_MODEL",
                            _cache_dir() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not p.is_file():
        missing(f"model not found: {p} (run scripts/fetch-model.sh or set INFERD_MODEL)")
    return p


@pytest.fixture(scope="session")
def inferd_bin() -> Path:
    p = inferd_build.build_dir() / "src" / "cli" / "inferd"
    if not (p.is_file() and os.access(p, os.X_OK)):
        missing(f"inferd CLI not found: {p} (build it or set INFERD_BUILD_DIR)")
    return p


def _pinned_llamacpp_version() -> str | None:
    script = REPO_ROOT / "scripts" / "llamacpp.sh"
    try:
        m = re.search(r"^LLAMA_CPP_PYTHON_VERSION=(\S+)", script.read_text(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


def _llamacpp_env() -> dict[str, str]:
    """LLAMACPP_* variables from the environment, else from the cached build's env.sh."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith("LLAMACPP_") or k == "LLAMA_CPP_LIB_PATH"}
    if "LLAMACPP_BIN_DIR" in env and "LLAMACPP_PY_DIR" in env:
        return env
    ver = _pinned_llamacpp_version()
    env_sh = _cache_dir() / f"llama.cpp-{ver}" / "env.sh"
    if ver is None or not env_sh.is_file():
        return {}
    out = {}
    for line in env_sh.read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


class LlamaCpp:
    """Paths of the llama.cpp reference build (see scripts/llamacpp.sh)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.version = env.get("LLAMACPP_VERSION", "?")
        self.bin_dir = Path(env["LLAMACPP_BIN_DIR"])
        self.lib_dir = Path(env.get("LLAMA_CPP_LIB_PATH", env["LLAMACPP_BIN_DIR"]))
        self.py_dir = Path(env["LLAMACPP_PY_DIR"])
        self.perplexity = self.bin_dir / "llama-perplexity"
        self.tokenize = self.bin_dir / "llama-tokenize"

    def run(self, args: list, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="session")
def llamacpp() -> LlamaCpp:
    env = _llamacpp_env()
    if not env:
        missing("llama.cpp reference build not found (run scripts/llamacpp.sh)")
    lc = LlamaCpp(env)
    for p in (lc.perplexity, lc.tokenize, lc.lib_dir / "libllama.so",
              lc.py_dir / "llama_cpp" / "llama_cpp.py"):
        if not p.exists():
            missing(f"llama.cpp reference build incomplete: {p} missing "
                    "(run scripts/llamacpp.sh)")
    return lc


@pytest.fixture(scope="session")
def llama_cpp_module(llamacpp):
    """The `llama_cpp` Python package from the sdist (not pip-installed), bound to our build."""
    os.environ["LLAMA_CPP_LIB_PATH"] = str(llamacpp.lib_dir)
    if str(llamacpp.py_dir) not in sys.path:
        sys.path.insert(0, str(llamacpp.py_dir))
    try:
        import llama_cpp  # noqa: PLC0415
    except ImportError as e:  # e.g. numpy / diskcache / jinja2 missing
        missing(f"cannot import llama_cpp from {llamacpp.py_dir}: {e} "
                "(run scripts/install-deps.sh)")
    if not str(Path(llama_cpp.__file__).resolve()).startswith(str(llamacpp.py_dir.resolve())):
        pytest.fail(f"imported llama_cpp from {llama_cpp.__file__}, expected {llamacpp.py_dir}"
                    " (a pip-installed llama-cpp-python shadows the reference build)")
    return llama_cpp


@pytest.fixture(scope="session")
def llama_vocab(llama_cpp_module, model_path):
    """llama.cpp Llama with the vocabulary only (tokenization)."""
    return llama_cpp_module.Llama(model_path=str(model_path), vocab_only=True, verbose=False)


GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1
KV_TYPES = {"f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16}


@pytest.fixture(scope="session")
def llama_models(llama_cpp_module):
    """llama_models(path, kv="f16", n_ctx=2048) -> a llama.cpp Llama with logits for every
    evaluated position (CPU, flash attention off, K/V cache of type `kv`, context n_ctx, which
    llama.cpp pads to a multiple of 256), loaded once per session per (path, kv, n_ctx) and
    shared by every test file; llama_models.release(path) closes those of `path` early."""
    n_threads = int(os.environ.get("INFERD_REFERENCE_THREADS", min(os.cpu_count() or 2, 8)))
    loaded = {}

    def get(path, kv: str = "f16", n_ctx: int = 2048):
        key = (str(path), kv, n_ctx)
        if key not in loaded:
            loaded[key] = llama_cpp_module.Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True,
                n_threads=n_threads, n_threads_batch=n_threads, flash_attn=False,
                type_k=KV_TYPES[kv], type_v=KV_TYPES[kv], verbose=False)
        return loaded[key]

    def release(path):
        """Closes every Llama loaded on `path` now (a test's own file: its scores buffer
        alone is n_ctx x vocab floats, 0.4 GB for the embedded model)."""
        for key in [k for k in loaded if k[0] == str(path)]:
            loaded.pop(key).close()

    get.release = release
    yield get
    for llm in loaded.values():
        llm.close()


@pytest.fixture(scope="session")
def llama_model(llama_models, model_path):
    """llama.cpp on the embedded model as llama.cpp runs it by default (f16 K/V cache)."""
    return llama_models(model_path, "f16")


def import_gguf(llamacpp: LlamaCpp):
    """gguf-py: the pip package (scripts/install-deps.sh), else the copy vendored in the sdist."""
    try:
        import gguf  # noqa: PLC0415
    except ImportError:
        vendored = llamacpp.py_dir / "vendor" / "llama.cpp" / "gguf-py"
        sys.path.insert(0, str(vendored))
        try:
            import gguf  # noqa: PLC0415
        except ImportError as e:
            missing(f"gguf-py not importable: {e}")
    import gguf.quants  # noqa: PLC0415,F401
    return gguf


def write_f32_copy(gguf, src: Path, dst: Path):
    """Writes `src` with every tensor dequantized to F32 (exact: Q4_1/Q8_0 blocks are
    d*q+m / d*q in fp32) and every metadata KV pair (tokenizer arrays included) copied with
    its type, except general.file_type, which becomes ALL_F32 (0). No other key depends on the
    tensor types (general.quantization_version is written for F32 conversions too)."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    w = gguf.GGUFWriter(str(tmp), arch=arch)             # writes general.architecture itself
    alignment = r.fields.get("general.alignment")
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        if key == "general.file_type":
            w.add_key_value(key, int(gguf.LlamaFileType.ALL_F32), vtype)
        elif vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    if alignment is not None:
        w.data_alignment = int(alignment.contents())

    def f32_tensors():
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            yield t.name, np.ascontiguousarray(a.reshape([int(d) for d in reversed(t.shape)]))

    write_gguf(gguf, w, f32_tensors(), tmp, dst)


def write_gguf(gguf, w, tensors, tmp: Path, dst: Path):
    """Adds (name, float32 array) tensors to GGUFWriter `w` (opened on `tmp`), writes the
    file and moves it to `dst`; `tmp` is removed on failure."""
    try:
        for name, a in tensors:
            assert a.dtype == np.float32, name
            w.add_tensor(name, np.ascontiguousarray(a), raw_dtype=gguf.GGMLQuantizationType.F32)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


def llamacpp_greedy(llm, prompt_ids, n):
    """Greedy (argmax) continuation by a llama.cpp Llama, EOS ignored, one token per decode
    like a server: (tokens, top-2 margins)."""
    llm.reset()
    llm.eval(prompt_ids)
    out, margins = [], []
    for _ in range(n):
        row = llm.scores[llm.n_tokens - 1]
        tok = int(np.argmax(row))
        top2 = np.sort(row)[-2:]
        margins.append(float(top2[1] - top2[0]))
        out.append(tok)
        llm.eval([tok])
    return out, margins


@pytest.fixture(scope="session")
def gguf_module(llamacpp):
    return import_gguf(llamacpp)


@pytest.fixture(scope="session")
def f32_model_path(model_path, gguf_module) -> Path:
    """An F32 copy of the embedded model (same metadata, all tensors dequantized to F32),
    built once and cached under build/reference/, keyed by the source's size and mtime.

    On it llama.cpp's CPU matmuls are plain fp32 (no Q8_1 activation quantization), so with
    an F32 K/V cache and flash attention off its arithmetic is no longer lossy and the strict
    thresholds apply."""
    st = model_path.stat()
    out_dir = REPO_ROOT / "build" / "reference"
    dst = out_dir / f"{model_path.stem}.{st.st_size}-{st.st_mtime_ns}.f32.gguf"
    if not dst.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(f"{model_path.stem}.*.f32.gguf"):
            stale.unlink()
        write_f32_copy(gguf_module, model_path, dst)
    return dst


@pytest.fixture(scope="session")
def run_inferd(inferd_bin):
    """run_inferd([args...]) runs our CLI; fails the test with its stderr on a non-zero exit."""

    def run(args: list, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [str(inferd_bin)] + [str(a) for a in args]
        full_env = {**os.environ, **env} if env else None
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                           env=full_env)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {r.returncode}\nstderr:\n{r.stderr[-4000:]}",
                        pytrace=False)
        return r

    return run


@pytest.fixture(scope="session")
def run_inferd_json(run_inferd):
    """run_inferd_json([args...]) -> the JSON object on our CLI's last stdout line
    (all_lines=True: a list with one object per non-empty stdout line)."""

    def run(args: list, timeout: float = 900, all_lines: bool = False, env: dict | None = None):
        r = run_inferd(args, timeout=timeout, env=env)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        objs, err = [], None
        try:
            objs = [json.loads(ln) for ln in (lines if all_lines else lines[-1:])]
        except json.JSONDecodeError as e:
            err = e
        if err is not None:
            pytest.fail(f"inferd {args[0]}: stdout is not JSON lines ({err}):\n{r.stdout[:2000]}",
                        pytrace=False)
        if not objs:
            pytest.fail(f"inferd {args[0]}: empty stdout", pytrace=False)
        return objs if all_lines else objs[0]

    return run


class ReferenceReport:
    """Collects measured figures: report.record("perplexity", ours=..., llamacpp=...)."""

    def record(self, name: str, **figures):
        _FIGURES.setdefault(name, {}).update(figures)
        print(f"[reference] {name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items()))
        _write_report()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _report_path() -> Path:
    return Path(os.environ.get("INFERD_REFERENCE_REPORT",
                               REPO_ROOT / "build" / "reference" / "llamacpp.json"))


def _write_report():
    p = _report_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n")
        tmp.replace(p)
    except OSError:
        pass


@pytest.fixture(scope="session")
def reference_report() -> ReferenceReport:
    return ReferenceReport()


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("reference figures (llama.cpp vs inferd)")
    for name, figs in _FIGURES.items():
        terminalreporter.write_line(
            f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figs.items()))
    terminalreporter.write_line(f"(written to {_report_path()})")
