"""Fixtures for the Python package tests: the embedded model, one shared LLM, the CLI.

The tests run the installed package (``pip install .``) against the real embedded model
(``$INFERD_MODEL``, else the path scripts/fetch-model.sh uses). A missing model or CLI
binary is an error, not a skip: these tests must not pass without running.
"""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
import inferd_build  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


def _model_path() -> str:
    env = os.environ.get("INFERD_MODEL")
    if env:
        return env
    cache = os.environ.get("INFERD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "inferd")
    return os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def model_path() -> str:
    path = _model_path()
    if not os.path.isfile(path):
        pytest.fail(f"embedded model not found at {path}: run scripts/fetch-model.sh or set INFERD_MODEL")
    return path


@pytest.fixture(scope="session")
def llm(model_path):
    import inferd

    # A smaller KV cache than the 1 GiB default keeps the test process light.
    return inferd.LLM(model=model_path, kv_cache_memory="256MiB", max_model_len=2048)


@pytest.fixture(scope="session")
def cli_path() -> str:
    return str(inferd_build.inferd_binary())
