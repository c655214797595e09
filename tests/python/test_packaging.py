# tests/python/test_packaging.py — `pip install ./bindings/python` makes a working package. The
# sources are copied out first, so that setuptools' build/ and *.egg-info land in a temporary
# directory and not in the source tree. The build runs offline (--no-build-isolation) when the
# Python running the tests can build wheels itself (setuptools >= 70.1, or setuptools and wheel);
# otherwise pip fetches them from the package index as `pip install ./bindings/python` does, and
# the test skips when the index cannot be reached.
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BINDINGS_DIR, child_env, run_python

import pandagpt


def _can_build_wheels() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    # the version from the metadata: importing setuptools here would patch distutils in the
    # test process
    from importlib.metadata import version as dist_version
    version = tuple(int(x) for x in dist_version("setuptools").split(".")[:2] if x.isdigit())
    return version >= (70, 1)  # bdist_wheel moved into setuptools


def test_pip_install(tmp_path: Path, demo_dir: Path) -> None:
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed for this Python")
    src = tmp_path / "src"
    shutil.copytree(BINDINGS_DIR, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    args = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
            str(target), str(src)]
    offline = _can_build_wheels()
    if offline:
        args[4:4] = ["--no-build-isolation", "--no-index"]
    pip = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env=child_env(PIP_DISABLE_PIP_VERSION_CHECK="1"))
    out = pip.stdout + pip.stderr
    if pip.returncode != 0 and not offline and any(
            s in out for s in ("No matching distribution", "Could not find a version",
                               "NewConnectionError", "Temporary failure in name resolution",
                               "Network is unreachable")):
        pytest.skip(f"building needs setuptools from the package index, which failed: {out}")
    assert pip.returncode == 0, out
    files = {p.relative_to(target).as_posix() for p in (target / "pandagpt").rglob("*")
             if "__pycache__" not in p.parts}
    want = {f"pandagpt/{p.name}" for p in (BINDINGS_DIR / "pandagpt").iterdir()
            if p.suffix == ".py" or p.name == "py.typed"}
    assert {f"pandagpt/{f.split('/', 1)[1]}" for f in files} == want
    meta = next(target.glob("pandagpt-*.dist-info"), None)
    assert meta is not None, sorted(p.name for p in target.iterdir())
    metadata = (meta / "METADATA").read_text()
    assert f"Version: {pandagpt.__version__}" in metadata
    assert "Requires-Dist: numpy" in metadata

    code = ("import pandagpt, sys; print(pandagpt.__file__); "
            "m = pandagpt.Model(None, encoder=sys.argv[1]); print(m.embed_dim)")
    env = child_env(PYTHONPATH=str(target))
    run = run_python(["-c", code, str(demo_dir / "demo-encoder.gguf")], env)
    assert run.returncode == 0, run.stderr
    where, dim = run.stdout.split()
    assert Path(where).resolve().is_relative_to(target.resolve())
    assert int(dim) > 0
