# tests/python/conftest.py — shared fixtures of the Python bindings' tests.
#
# Environment (set by tests/python/meson.build; each has a fallback for running pytest by hand):
#   PANDAGPT_LIBRARY  the libpandagpt.so under test
#   PG_DEMO_DIR       the demo assets (demo-llm.gguf, demo-encoder.gguf, demo.png, demo.wav)
#   PG_CLI            pandagpt-cli of the same build
#   PG_REFERENCE_DIR  ../shared/reference (default: beside the source tree); tests that need it
#                     skip with a message when it is absent
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
BINDINGS_DIR = SOURCE_ROOT / "bindings" / "python"

if str(BINDINGS_DIR) not in sys.path:  # running pytest by hand without PYTHONPATH
    sys.path.insert(0, str(BINDINGS_DIR))

import pandagpt  # noqa: E402


def _need_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set (meson test -C BUILD --suite python sets it)")
    return value


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    d = Path(_need_env("PG_DEMO_DIR"))
    for name in ("demo-llm.gguf", "demo-encoder.gguf", "demo.png", "demo.wav"):
        assert (d / name).is_file(), f"demo asset {d / name} missing (meson compile demo-assets)"
    return d


@pytest.fixture(scope="session")
def cli() -> str:
    return _need_env("PG_CLI")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    d = Path(os.environ.get("PG_REFERENCE_DIR") or SOURCE_ROOT.parent / "shared" / "reference")
    if not d.is_dir():
        pytest.skip(f"reference data not found at {d} (set PG_REFERENCE_DIR)")
    return d


@pytest.fixture(scope="session")
def demo_model(demo_dir: Path) -> pandagpt.Model:
    """The demo LLM with its encoder, on the CPU (shared by the tests; never closed by them)."""
    return pandagpt.Model(demo_dir / "demo-llm.gguf", encoder=demo_dir / "demo-encoder.gguf",
                          device="cpu")


@pytest.fixture(scope="session")
def demo_image(demo_dir: Path) -> pandagpt.Media:
    return load_or_skip(demo_dir / "demo.png")


@pytest.fixture(scope="session")
def demo_audio(demo_dir: Path) -> pandagpt.Media:
    return load_or_skip(demo_dir / "demo.wav")


def load_or_skip(path: Path, **kw: Any) -> pandagpt.Media:
    """Media.load, skipping the test when this build lacks the decoder library."""
    try:
        return pandagpt.Media.load(path, **kw)
    except pandagpt.UnsupportedError as e:
        pytest.skip(f"this build cannot decode {path.name}: {e}")


def child_env(**overrides: Optional[str]) -> Dict[str, str]:
    """The environment for a child Python: ours, the bindings on PYTHONPATH, no bytecode."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BINDINGS_DIR)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_python(code_or_args: List[str], env: Dict[str, str],
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs a child Python (the one running the tests) and captures its output."""
    return subprocess.run([sys.executable, *code_or_args], env=env, capture_output=True,
                          text=True, timeout=timeout)
