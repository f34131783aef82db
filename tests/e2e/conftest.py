import os
import pathlib
import sys
from time import time_ns

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
import inferd_build  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_dir():
    return inferd_build.build_dir()


def _model_path():
    return os.environ.get("INFERD_MODEL") or os.path.expanduser(
        "~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real `inferd serve` process on a free port; logs go to a file (see .log_text())."""

    def __init__(self, inferd, args, tmp_path, env=None, wait=True, exact=None, cwd=None, port=None,
                 command="serve"):
        """exact: the whole command line after `inferd <command>` ("{port}" is replaced by the
        port), run in `cwd`, instead of the serve defaults below followed by args. port: a
        given port instead of a free one (a replica restarted where it was)."""
        import subprocess
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{command}-{self.port}-{int(time_ns())}.log"
        self._log = open(self.log_path, "wb")
        cmd = [str(inferd), "serve", _model_path(), "--host", "127.0.0.1", "--port", str(self.port),
               "--served-model-name", "smollm2", "--kv-cache-memory", "256MiB", "--max-model-len", "2048",
               "--disable-log-stats", *map(str, args)]
        if exact is not None:
            cmd = [str(inferd), command, *(str(a).replace("{port}", str(self.port)) for a in exact)]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, cwd=cwd)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=120):
        import time
        import urllib.request
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inferd exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"inferd not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=None, timeout=60):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def sanitizer_report(self):
        """The first sanitizer report in the server's log (ASan, UBSan, TSan, LSan), or None."""
        text = self.log_path.read_text(errors="replace")
        for marker in SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                return text[max(0, at - 200):at + 4000]
        return None


# What sanitizer builds (scripts/test-sanitizers.sh) print when they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "runtime error: ")


def _stop_and_check(servers):
    reports = []
    for s in servers:
        s.stop()
        report = s.sanitizer_report()
        if report:
            reports.append(report)
    if reports:
        pytest.fail("sanitizer report in the server log:\n" + reports[0], pytrace=False)


@pytest.fixture(scope="session")
def inferd_bin(build_dir):
    return inferd_build.inferd_binary(build_dir)


@pytest.fixture(scope="session")
def server(inferd_bin, tmp_path_factory):
    """One shared server for tests that do not change its flags (model name 'smollm2')."""
    s = ServerProcess(inferd_bin, [], tmp_path_factory.mktemp("server"))
    yield s
    _stop_and_check([s])


@pytest.fixture
def start_server(inferd_bin, tmp_path):
    """start_server(*flags, env=None, wait=True) -> ServerProcess, stopped after the test."""
    started = []

    def _start(*args, env=None, wait=True, exact=None, cwd=None, port=None, command="serve"):
        s = ServerProcess(inferd_bin, args, tmp_path, env=env, wait=wait, exact=exact, cwd=cwd, port=port,
                          command=command)
        started.append(s)
        return s
    yield _start
    _stop_and_check(started)
