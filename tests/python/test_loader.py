# tests/python/test_loader.py — how the bindings find libpandagpt (pandagpt/_loader.py), each
# case in a child Python with its own environment: PANDAGPT_LIBRARY (a bad value is an error that
# says what is wrong with it, and nothing else is tried), pkg-config's libdir, the system loader
# (LD_LIBRARY_PATH), and the error listing every place when all fail.
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import child_env, run_python

import pandagpt

PROBE = "import pandagpt; print(pandagpt.library_path()); print(pandagpt.version())"


def _lib() -> Path:
    return Path(os.environ.get("PANDAGPT_LIBRARY") or pandagpt.library_path()).resolve()


def _no_search_env(tmp_path: Path, **more: str) -> dict:
    """An environment where pkg-config finds no pandagpt and the loader has no extra path."""
    empty = tmp_path / "empty-pc"
    empty.mkdir(exist_ok=True)
    env = {"PANDAGPT_LIBRARY": None, "LD_LIBRARY_PATH": None, "PKG_CONFIG_PATH": str(empty),
           "PKG_CONFIG_LIBDIR": str(empty)}
    env.update(more)
    return child_env(**env)


def test_import_does_not_need_the_library(tmp_path: Path) -> None:
    run = run_python(["-c", "import pandagpt; print(pandagpt.__version__)"],
                     child_env(PANDAGPT_LIBRARY=str(tmp_path / "nothing.so")))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == pandagpt.__version__


@pytest.mark.parametrize("kind", ["missing", "directory", "not-a-library"])
def test_bad_pandagpt_library(tmp_path: Path, kind: str) -> None:
    if kind == "missing":
        value, why = tmp_path / "does" / "not" / "exist.so.0", "no such file"
    elif kind == "directory":
        value, why = tmp_path, "is a directory"
    else:
        value, why = tmp_path / "libfake.so.0", "cannot be loaded"
        value.write_text("not an ELF file\n")
    run = run_python(["-c", PROBE], child_env(PANDAGPT_LIBRARY=str(value)))
    assert run.returncode != 0
    assert "LibraryNotFoundError" in run.stderr
    assert f"PANDAGPT_LIBRARY={value}: {why}" in run.stderr, run.stderr
    assert "no other place was tried" in run.stderr


def test_pandagpt_library(tmp_path: Path) -> None:
    run = run_python(["-c", PROBE], child_env(PANDAGPT_LIBRARY=str(_lib())))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(_lib()), pandagpt.version()]


def test_pkg_config(tmp_path: Path) -> None:
    if not shutil.which("pkg-config"):
        pytest.skip("pkg-config is not installed")
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libpandagpt.so.0").symlink_to(_lib())
    pc = tmp_path / "pc"
    pc.mkdir()
    (pc / "pandagpt.pc").write_text(f"libdir={libdir}\nName: pandagpt\nDescription: test\n"
                                    f"Version: {pandagpt.version()}\nLibs: -L${{libdir}} "
                                    "-lpandagpt\n")
    run = run_python(["-c", PROBE], _no_search_env(tmp_path, PKG_CONFIG_PATH=str(pc)))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == str(libdir / "libpandagpt.so.0")


def test_system_loader(tmp_path: Path) -> None:
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libpandagpt.so.0").symlink_to(_lib())
    run = run_python(["-c", PROBE], _no_search_env(tmp_path, LD_LIBRARY_PATH=str(libdir)))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[1] == pandagpt.version()


def test_nothing_found_lists_every_place(tmp_path: Path) -> None:
    run = run_python(["-c", PROBE], _no_search_env(tmp_path))
    if run.returncode == 0:
        pytest.skip(f"an installed libpandagpt was found: {run.stdout.split()[0]}")
    err = run.stderr
    assert "LibraryNotFoundError: cannot load libpandagpt; looked in:" in err, err
    assert "PANDAGPT_LIBRARY: not set" in err
    assert "pkg-config" in err
    assert 'ctypes.util.find_library("pandagpt")' in err or "system loader" in err
    assert "system loader: libpandagpt.so.0" in err
