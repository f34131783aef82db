import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
import inferd_build  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _model_path():
    p = os.environ.get("INFERD_MODEL") or os.path.expanduser(
        "~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    return p


@pytest.fixture(scope="session")
def inferd_bin():
    return str(inferd_build.inferd_binary())


@pytest.fixture(scope="session")
def model_path():
    p = _model_path()
    if not os.path.exists(p):
        pytest.fail(f"embedded model missing at {p}: run scripts/fetch-model.sh")
    return p


@pytest.fixture(scope="session")
def run(inferd_bin):
    def _run(*args, check=True, timeout=600, env=None):
        full_env = {**os.environ, **env} if env else None
        proc = subprocess.run([inferd_bin, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=full_env)
        if check and proc.returncode != 0:
            raise AssertionError(f"inferd {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
        return proc
    return _run
