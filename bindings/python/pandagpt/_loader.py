# pandagpt/_loader.py — finds and opens the shared library libpandagpt.
#
# The search order is fixed and every step says why it failed, so that "cannot find the library"
# always comes with the list of places tried:
#   1. the environment variable PANDAGPT_LIBRARY, a path to the shared object. When it is set it
#      is the only place tried: an explicit choice that fails must not be replaced silently by
#      another copy of the library (a build tree tested against an older installed one);
#   2. `pkg-config --variable=libdir pandagpt`, and libpandagpt.so.0 in that directory;
#   3. the system loader: ctypes.util.find_library("pandagpt"), then the bare SONAME, which
#      dlopen looks up through LD_LIBRARY_PATH, the ld.so cache and the default directories.
from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from typing import List, Tuple

ENV_VAR = "PANDAGPT_LIBRARY"

#: The file names of the library's ABI 0 on this platform, SONAME first.
if sys.platform == "darwin":
    SONAMES: Tuple[str, ...] = ("libpandagpt.0.dylib", "libpandagpt.dylib")
elif sys.platform == "win32":
    SONAMES = ("pandagpt.dll", "libpandagpt.dll")
else:
    SONAMES = ("libpandagpt.so.0",)


class LibraryNotFoundError(OSError):
    """libpandagpt could not be loaded; the message lists every place tried and why it failed."""

    def __init__(self, attempts: List[Tuple[str, str]], note: str = "") -> None:
        self.attempts = list(attempts)
        lines = ["cannot load libpandagpt; looked in:"]
        lines += [f"  - {where}: {why}" for where, why in attempts]
        if note:
            lines.append(note)
        lines.append(f"Set {ENV_VAR} to the path of libpandagpt.so.0 (a build tree's "
                     "build/libpandagpt.so.0, or the installed one).")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # OSError would print the args tuple
        return self.args[0]


def _open(path: str) -> ctypes.CDLL:
    # RTLD_LOCAL (the default): the library exports only pg_* and needs nobody else to see them.
    return ctypes.CDLL(path)


def _from_env(value: str) -> Tuple[ctypes.CDLL | None, str]:
    if not os.path.exists(value):
        return None, "no such file"
    if os.path.isdir(value):
        return None, "is a directory, not the shared library"
    try:
        return _open(value), ""
    except OSError as e:
        return None, f"cannot be loaded ({e})"


def _from_pkg_config(attempts: List[Tuple[str, str]]) -> Tuple[ctypes.CDLL | None, str]:
    where = "pkg-config --variable=libdir pandagpt"
    try:
        run = subprocess.run(["pkg-config", "--variable=libdir", "pandagpt"],
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        attempts.append((where, "pkg-config is not installed"))
        return None, ""
    except (OSError, subprocess.SubprocessError) as e:
        attempts.append((where, f"pkg-config failed to run ({e})"))
        return None, ""
    libdir = run.stdout.strip()
    if run.returncode != 0 or not libdir:
        why = run.stderr.strip().splitlines()
        if why:
            reason = why[0]
        elif run.returncode != 0:
            reason = f"no pandagpt.pc on its search path (exit status {run.returncode})"
        else:
            reason = "pandagpt.pc has no libdir"
        attempts.append((where, reason))
        return None, ""
    for name in SONAMES:
        path = os.path.join(libdir, name)
        if not os.path.exists(path):
            attempts.append((path, "no such file (from pkg-config)"))
            continue
        try:
            return _open(path), path
        except OSError as e:
            attempts.append((path, f"cannot be loaded ({e})"))
    return None, ""


def _from_system(attempts: List[Tuple[str, str]]) -> Tuple[ctypes.CDLL | None, str]:
    found = ctypes.util.find_library("pandagpt")
    names = ([found] if found else []) + [n for n in SONAMES if n != found]
    if not found:
        attempts.append(('ctypes.util.find_library("pandagpt")', "not found"))
    for name in names:
        try:
            return _open(name), name
        except OSError as e:
            attempts.append((f"system loader: {name}", str(e)))
    return None, ""


def load_library() -> Tuple[ctypes.CDLL, str]:
    """Opens libpandagpt by the search order above; returns the library and where it came from.

    Raises LibraryNotFoundError listing every place tried and why each one failed."""
    attempts: List[Tuple[str, str]] = []
    value = os.environ.get(ENV_VAR)
    if value:
        lib, why = _from_env(value)
        if lib is not None:
            return lib, value
        attempts.append((f"{ENV_VAR}={value}", why))
        raise LibraryNotFoundError(attempts, note=f"{ENV_VAR} is set, so no other place was "
                                   "tried; unset it to search pkg-config and the system loader.")
    attempts.append((ENV_VAR, "not set"))
    for step in (_from_pkg_config, _from_system):
        lib, where = step(attempts)
        if lib is not None:
            return lib, where
    raise LibraryNotFoundError(attempts)
