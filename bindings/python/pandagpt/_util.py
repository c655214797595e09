# pandagpt/_util.py — argument conversions shared by the wrappers: paths, integer ranges, enums.
# Python-side checks raise InvalidArgumentError (a ValueError) or TypeError before a value could
# be silently truncated by ctypes (which wraps ints to the C type's width).
from __future__ import annotations

import enum
import os
from typing import Type, TypeVar, Union

from .errors import InvalidArgumentError

E = TypeVar("E", bound=enum.IntEnum)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
UINT64_MAX = (1 << 64) - 1

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def fsencode(path: PathLike, what: str = "path") -> bytes:
    """A path as the bytes the C library gets (the file-system encoding); no NUL inside."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a str, bytes or os.PathLike, not {type(path).__name__}")
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise InvalidArgumentError(f"{what} contains a NUL byte: {path!r}")
    return raw


def int_in(value: int, lo: int, hi: int, what: str) -> int:
    """value as an int within [lo, hi]; bool and non-integers are refused."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    v = value.__index__()
    if not lo <= v <= hi:
        raise InvalidArgumentError(f"{what} {v} is outside [{lo}, {hi}]")
    return v


def int32(value: int, what: str, lo: int = INT32_MIN) -> int:
    """value checked to fit an int32_t (and to be >= lo)."""
    return int_in(value, lo, INT32_MAX, what)


def to_enum(cls: Type[E], value: Union[E, int, str], what: str) -> E:
    """An enum member from a member, its value or its name in any case ("image", "IMAGE")."""
    if isinstance(value, str):
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise InvalidArgumentError(f"unknown {what} {value!r} (one of {names})") from None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be a {cls.__name__}, an int or a name, "
                        f"not {type(value).__name__}")
    try:
        return cls(value.__index__())
    except ValueError:
        raise InvalidArgumentError(f"unknown {what} {value!r}") from None
