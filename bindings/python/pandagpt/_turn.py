# pandagpt/_turn.py — the machinery of a streamed chat turn: pg_session_chat running in a worker
# thread, its pieces handed to the consumer one at a time (Turn), and the registry of chat calls
# in flight that are cancelled and awaited at interpreter exit (_CallsInFlight).
#
# The C callback of a streamed turn waits until the consumer asks for a piece, hands it over and
# returns, so the library computes at most one token ahead of the consumer; a cancelled turn's
# waiting callback returns 1 and the library stops with PG_ERR_CANCELLED. The worker holds no
# reference to the Session: it gets the call to make and a function releasing the session.
from __future__ import annotations

import atexit
import collections
import ctypes
import sys
import threading
import weakref
from typing import Any, Callable, Deque, List, Optional

from . import _raw
from ._handle import _Handle
from ._raw import Status
from .errors import CancelledError, error_for, last_error

BY_CONSUMER = "stopped by its consumer"
AT_EXIT = "the interpreter is exiting"


class _CallsInFlight:
    """The pg_session_chat calls running now, in any thread. Their C callbacks must not run once
    the interpreter is finalizing (a daemon thread entering Python through a ctypes callback
    then may crash the process), so at exit — after non-daemon threads are joined, before
    finalization — every running call is cancelled at its next piece and awaited."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._turns: "weakref.WeakSet[Turn]" = weakref.WeakSet()
        self.stopping = False  # read without the lock by the callbacks

    def enter(self, turn: Optional["Turn"] = None) -> None:
        with self._cond:
            if self.stopping:
                raise CancelledError(f"no chat starts now: {AT_EXIT}", Status.CANCELLED)
            self._count += 1
            if turn is not None:
                self._turns.add(turn)

    def leave(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def stop_all(self) -> None:
        with self._cond:
            self.stopping = True
            turns = list(self._turns)
        for turn in turns:
            turn.cancel(AT_EXIT)
        with self._cond:
            while self._count:
                self._cond.wait()


IN_FLIGHT = _CallsInFlight()
atexit.register(IN_FLIGHT.stop_all)


class Turn:
    """pg_session_chat running in a worker thread, handing its pieces to the consumer one at a
    time. Every field is guarded by _cond."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pieces: Deque[str] = collections.deque()
        self._demand = False                  # the consumer waits for a piece
        self._cancel: Optional[str] = None    # why the turn was cancelled, once it is
        self._done = False                    # pg_session_chat returned
        self.owner = threading.get_ident()    # the thread that started the turn
        self.thread: Optional[threading.Thread] = None
        self.status: int = Status.INTERNAL
        self.message = ""
        self.error: Optional[BaseException] = None

    @property
    def done(self) -> bool:
        with self._cond:
            return self._done

    # worker side
    def offer(self, piece: str) -> int:
        """The C callback's body: waits for the consumer's demand; 1 (stop) once cancelled."""
        with self._cond:
            while not self._demand and self._cancel is None:
                self._cond.wait()
            if self._cancel is not None:
                return 1
            self._pieces.append(piece)
            self._demand = False
            self._cond.notify_all()
            return 0

    def fail(self, error: BaseException) -> None:
        """Records an exception of the worker's own code (reported to the consumer)."""
        with self._cond:
            if self.error is None:
                self.error = error

    def finish(self, status: int, message: str, error: Optional[BaseException]) -> None:
        with self._cond:
            self.status, self.message = status, message
            if self.error is None:
                self.error = error
            self._done = True
            self._cond.notify_all()

    # consumer side
    def next_piece(self) -> Optional[str]:
        """The next piece, or None when the call has returned."""
        with self._cond:
            if not self._pieces and not self._done:
                self._demand = True
                self._cond.notify_all()
                while not self._pieces and not self._done:
                    self._cond.wait()
            return self._pieces.popleft() if self._pieces else None

    def cancel(self, reason: str) -> None:
        """Asks the running call to stop at its next piece (no-op once it has returned)."""
        with self._cond:
            if not self._done and self._cancel is None:
                self._cancel = reason
                self._cond.notify_all()

    def wait(self) -> None:
        """Joins the worker, except from the worker itself or during interpreter shutdown."""
        t = self.thread
        if t is None or t is threading.current_thread() or sys.is_finalizing():
            return
        t.join()

    def raise_for_status(self) -> None:
        """After the worker finished: raises what the turn ended with, unless it was a success
        or the consumer's own stop."""
        with self._cond:
            status, message, error, cancel = self.status, self.message, self.error, self._cancel
        if error is not None:
            raise error
        if status == Status.OK or (status == Status.CANCELLED and cancel == BY_CONSUMER):
            return
        if status == Status.CANCELLED and cancel is not None:
            raise CancelledError(f"the chat stream was cancelled: {cancel} ({message})",
                                 Status.CANCELLED)
        raise error_for(status, message)


def decode_piece(piece: Any, length: int) -> str:
    # The library guarantees whole UTF-8 characters; "replace" only keeps a library bug from
    # breaking a chat.
    return ctypes.string_at(piece, length).decode("utf-8", "replace")


def run_turn(turn: Turn, call: Callable[[Any], int], release: Callable[[], None]) -> None:
    """The worker: runs the blocking C call with a callback feeding turn, then releases the
    session. Holds no reference to the Session object."""
    def on_piece(piece: Any, length: int, token: int, user_data: Any) -> int:
        try:
            return turn.offer(decode_piece(piece, length))
        except BaseException as e:  # never let an exception unwind into C
            turn.fail(e)
            return 1

    callback = _raw.pg_token_callback(on_piece)  # alive for the whole call
    status: int = Status.INTERNAL
    message, error = "", None
    try:
        try:
            status = call(callback)
        finally:
            IN_FLIGHT.leave()
        if status != Status.OK:
            message = last_error()  # per thread: read it on the thread that failed
    except BaseException as e:
        error = e
    finally:
        release()
        turn.finish(status, message, error)


def release_session(handle: _Handle, busy: threading.Lock, media: List[_Handle]) -> None:
    for h in media:
        h.unpin()
    handle.unpin()
    busy.release()


def chat_call(lib: Any, sptr: Any, raw: bytes, arr: Any, n: int, params: Any,
               callback: Any) -> int:
    return lib.pg_session_chat(sptr, raw, arr, n, ctypes.byref(params), callback, None)
