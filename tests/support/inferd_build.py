"""Where the tests find the build: one definition for tests/cli, tests/e2e and tests/deploy."""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build_dir() -> pathlib.Path:
    """The CMake build directory: $INFERD_BUILD_DIR (relative to the repo root), default build/release."""
    build = pathlib.Path(os.environ.get("INFERD_BUILD_DIR", ROOT / "build" / "release"))
    return build if build.is_absolute() else ROOT / build


def inferd_binary(build: pathlib.Path | None = None) -> pathlib.Path:
    """The inferd executable of `build` (default build_dir()); a clear failure when it is missing."""
    import pytest

    exe = (build or build_dir()) / "src" / "cli" / "inferd"
    if not exe.exists():
        pytest.fail(f"inferd binary not found at {exe}: build first (scripts/build.sh)")
    return exe
