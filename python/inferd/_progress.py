"""The progress bar of LLM.generate, in vLLM's format:

    Processed prompts: 100%|██████████| 4/4 [00:01<00:00, 2.9it/s, est. speed input: 25.4 toks/s, output: 46.3 toks/s]

tqdm draws it when installed (``tqdm.auto``, as vLLM); otherwise a small stand-in writes
the same fields to stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

try:  # tqdm is optional (pip install inferd[progress])
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - exercised only without tqdm
    _tqdm = None


def _fmt_duration(seconds: float) -> str:
    if seconds != seconds or seconds < 0:  # NaN
        return "?"
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}:{(s // 60) % 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


class _PlainBar:
    """Minimal tqdm stand-in: redraws one line on a terminal, prints a line every 5 s otherwise."""

    def __init__(self, total: int, desc: str, postfix: str) -> None:
        self.total, self.desc, self.postfix, self.n = total, desc, postfix, 0
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._closed = False
        self._shown = -1  # the count last written (a finished bar is not written twice)

    @property
    def format_dict(self) -> dict:
        return {"elapsed": time.monotonic() - self.start}

    def _render(self) -> str:
        elapsed = time.monotonic() - self.start
        frac = self.n / self.total if self.total else 1.0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.n) / rate if rate > 0 else float("nan")
        return (f"{self.desc}: {int(frac * 100):3d}%| {self.n}/{self.total} "
                f"[{_fmt_duration(elapsed)}<{_fmt_duration(remaining)}, {rate:.2f}it/s, {self.postfix}]")

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last < (0.1 if self.tty else 5.0) and self.n < self.total:
            return
        self.last = now
        self._shown = self.n
        sys.stderr.write(("\r" if self.tty else "") + self._render() + ("" if self.tty else "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.tty:
            sys.stderr.write("\r" + self._render() + "\n")
        elif self._shown != self.n:
            sys.stderr.write(self._render() + "\n")
        sys.stderr.flush()


class ProgressBar:
    """Counts finished requests and the token speeds, as vLLM's LLM._run_engine does."""

    def __init__(self, total: int, enabled: bool, desc: str = "Processed prompts") -> None:
        self._bar: Optional[Any] = None
        self.in_tokens = 0
        self.out_tokens = 0
        if not enabled:
            return
        postfix = f"est. speed input: {0:.2f} toks/s, output: {0:.2f} toks/s"
        if _tqdm is not None:
            self._bar = _tqdm(total=total, desc=desc, dynamic_ncols=True, postfix=postfix)
        else:
            self._bar = _PlainBar(total, desc, postfix)

    def update(self, in_tokens: int, out_tokens: int) -> None:
        self.in_tokens += in_tokens
        self.out_tokens += out_tokens
        if self._bar is None:
            return
        elapsed = max(self._bar.format_dict["elapsed"], 1e-9)
        self._bar.postfix = (f"est. speed input: {self.in_tokens / elapsed:.2f} toks/s, "
                             f"output: {self.out_tokens / elapsed:.2f} toks/s")
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
