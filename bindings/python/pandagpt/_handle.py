# pandagpt/_handle.py — ownership of one C object (pg_model, pg_session or pg_media).
#
# A _Handle frees its pointer exactly once, and never while a call is using it: every call that
# passes the pointer to C "pins" the handle for its duration, and close() only marks the handle
# closed while pins remain; the last unpin frees. Children pin their parent for their whole life
# (a session pins its model), so a model closed under live sessions is freed after the last of
# them, children always before parents.
#
# The owning wrappers register handle.close with weakref.finalize rather than defining __del__:
# finalize runs it when the wrapper is collected, in any order inside reference cycles (the
# pins keep the order right), and at interpreter exit it runs the remaining ones in reverse order
# of creation while the modules — and so the ctypes function pointers — are still intact; after
# that it runs nothing. A handle still pinned at exit (a chat running in a daemon thread) is left
# to the process's end rather than freed under the running call.
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Optional

from .errors import ClosedError


class _Handle:
    """One owned C pointer, its free function and the pins that delay the free."""

    def __init__(self, kind: str, ptr: Any, free: Callable[[Any], None],
                 parent: Optional["_Handle"] = None) -> None:
        """Takes ownership of ptr. parent, when given, must already be pinned by the caller: the
        pin is released after free(ptr)."""
        self.kind = kind
        self._ptr = ptr
        self._free = free
        self._parent = parent
        self._lock = threading.Lock()
        self._pins = 0
        self._closing = False

    @property
    def closed(self) -> bool:
        """True once close() was called (the C object may live on while pinned)."""
        return self._closing

    def pin(self) -> Any:
        """Returns the pointer and keeps it from being freed until unpin(); ClosedError when
        closed."""
        with self._lock:
            if self._closing:
                raise ClosedError(f"this {self.kind} is closed")
            self._pins += 1
            return self._ptr

    def unpin(self) -> None:
        """Releases one pin; frees the C object when it was the last one after close()."""
        with self._lock:
            self._pins -= 1
            ptr = self._take_if_free()
        if ptr is not None:
            self._release(ptr)

    def close(self) -> None:
        """Marks the handle closed and frees the C object now, or at the last unpin. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            ptr = self._take_if_free()
        if ptr is not None:
            self._release(ptr)

    @contextlib.contextmanager
    def use(self) -> Iterator[Any]:
        """`with handle.use() as ptr:` — the pointer, pinned for the block."""
        ptr = self.pin()
        try:
            yield ptr
        finally:
            self.unpin()

    def _take_if_free(self) -> Any:
        # under self._lock
        if self._closing and self._pins == 0 and self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            return ptr
        return None

    def _release(self, ptr: Any) -> None:
        try:
            self._free(ptr)
        finally:
            if self._parent is not None:
                self._parent.unpin()
