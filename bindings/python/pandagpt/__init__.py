# pandagpt/__init__.py — Python bindings of libpandagpt (PandaGPT: ImageBind encoders + Vicuna),
# pure ctypes over the C library's public API (include/pandagpt.h).
#
#     import pandagpt
#     with pandagpt.Model("vicuna.gguf", encoder="imagebind.gguf") as model, \
#          pandagpt.Session(model) as session:
#         for piece in session.chat("What is this?", media=[pandagpt.Media.load("cat.jpg")]):
#             print(piece, end="", flush=True)
#
# The shared library is found through $PANDAGPT_LIBRARY, then pkg-config, then the system loader
# (pandagpt._loader); it is opened at the first call that needs it, not at import.
"""Python bindings of libpandagpt: PandaGPT (ImageBind + Vicuna) inference."""
from __future__ import annotations

from typing import Tuple

from . import _raw
from ._loader import LibraryNotFoundError
from ._raw import Device, Modality, Status
from .errors import (CancelledError, ClosedError, ContextFullError, DeviceError, FileError,
                     FormatError, InternalError, InvalidArgumentError, OutOfMemoryError,
                     PandaGPTError, SessionBusyError, UnsupportedError)
from .media import EXTENSION_MODALITY, Media
from .model import Model
from .session import Session, Timings

__version__ = "0.2.0"

__all__ = [
    "Model", "Session", "Media", "Timings", "Status", "Device", "Modality",
    "PandaGPTError", "InvalidArgumentError", "FileError", "FormatError", "UnsupportedError",
    "OutOfMemoryError", "DeviceError", "ContextFullError", "CancelledError", "InternalError",
    "ClosedError", "SessionBusyError", "LibraryNotFoundError", "EXTENSION_MODALITY",
    "version", "version_info", "library_path",
]


def version() -> str:
    """The C library's version, "major.minor.patch" (pg_version_string)."""
    return _raw.lib().pg_version_string().decode("ascii")


def version_info() -> Tuple[int, int, int]:
    """The C library's version as (major, minor, patch) (pg_version)."""
    v = _raw.lib().pg_version()
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


def library_path() -> str:
    """Where the loaded libpandagpt came from."""
    return _raw.library_path()
