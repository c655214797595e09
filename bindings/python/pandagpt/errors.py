# pandagpt/errors.py — the exceptions of the bindings: one per pg_status, plus the Python-side
# misuse cases (a closed handle, a busy session), which map onto PG_ERR_INVALID_ARGUMENT because
# the C library would answer a NULL handle the same way.
#
# Every error carries .status (a Status) and .message: for a C failure, pg_last_error() of the
# thread that made the failing call (the text names the file, tensor or argument at fault).
from __future__ import annotations

from typing import Dict, Type, Union

from ._raw import Status, lib


class PandaGPTError(Exception):
    """Base of every libpandagpt error. .status is the pg_status, .message the library's text."""

    def __init__(self, message: str, status: Union[Status, int] = Status.INTERNAL) -> None:
        super().__init__(message)
        try:
            self.status: Union[Status, int] = Status(status)
        except ValueError:  # a status newer than these bindings
            self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(PandaGPTError, ValueError):
    """PG_ERR_INVALID_ARGUMENT: a bad value, an out-of-range id, a buffer too small."""


class FileError(PandaGPTError, OSError):
    """PG_ERR_IO: a file could not be opened, read or mapped; the message names the path."""


class FormatError(PandaGPTError, ValueError):
    """PG_ERR_FORMAT: a malformed file (bad GGUF, missing tensor, corrupt media)."""


class UnsupportedError(PandaGPTError):
    """PG_ERR_UNSUPPORTED: valid, but this build lacks it (a decoder library, CUDA, a type)."""


class OutOfMemoryError(PandaGPTError, MemoryError):
    """PG_ERR_OUT_OF_MEMORY: a host or device allocation failed."""


class DeviceError(PandaGPTError):
    """PG_ERR_DEVICE: the accelerator reported an error, or none is present."""


class ContextFullError(PandaGPTError):
    """PG_ERR_CONTEXT_FULL: the session's KV cache is full; call Session.reset()."""


class CancelledError(PandaGPTError):
    """PG_ERR_CANCELLED: generation was stopped before the answer was complete.

    The bindings raise it only when the stop did not come from the caller's own code: e.g. a
    suspended chat stream superseded by another call on its session."""


class InternalError(PandaGPTError):
    """PG_ERR_INTERNAL: a bug in libpandagpt; please report it with the message."""


class ClosedError(InvalidArgumentError):
    """A Model, Session or Media used after close() (the C library's NULL handle)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Status.INVALID_ARGUMENT)


class SessionBusyError(InvalidArgumentError):
    """A session called while another call on it is running (sessions are single-threaded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Status.INVALID_ARGUMENT)


_BY_STATUS: Dict[int, Type[PandaGPTError]] = {
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.IO: FileError,
    Status.FORMAT: FormatError,
    Status.UNSUPPORTED: UnsupportedError,
    Status.OUT_OF_MEMORY: OutOfMemoryError,
    Status.DEVICE: DeviceError,
    Status.CONTEXT_FULL: ContextFullError,
    Status.CANCELLED: CancelledError,
    Status.INTERNAL: InternalError,
}


def last_error() -> str:
    """pg_last_error() of the calling thread, decoded."""
    return lib().pg_last_error().decode("utf-8", "replace")


def error_for(status: int, message: str) -> PandaGPTError:
    """The exception for a failed status with the given message."""
    cls = _BY_STATUS.get(status, PandaGPTError)
    if not message:
        message = lib().pg_status_string(status).decode("utf-8", "replace")
    return cls(message, status)


def check(status: int) -> None:
    """Raises the exception for status unless it is PG_OK. Call it on the thread of the call."""
    if status != Status.OK:
        raise error_for(status, last_error())
