import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_dir():
    """The CMake build directory: $INFERD_BUILD_DIR (relative to the repo root), default build/release."""
    build = pathlib.Path(os.environ.get("INFERD_BUILD_DIR", ROOT / "build" / "release"))
    return build if build.is_absolute() else ROOT / build
