# pandagpt/session.py — Session: one conversation on a Model (owns a pg_session), its chat turns
# (blocking, with an on_piece callback, or streamed through a generator) and the low-level calls.
#
# Streaming. pg_session_chat is blocking and calls a C callback per piece, so the generator form
# runs the call in a worker thread ("pandagpt-chat") and hands the pieces over one at a time
# through a Turn (_turn.py): the C callback waits until the consumer asks for a piece, hands it
# over and returns, so the library computes at most one token ahead of the consumer. When the consumer
# stops early — break, an exception in its loop, close(), the generator collected, Ctrl-C while
# it waits — the generator's finally marks the turn cancelled; the waiting callback returns 1,
# the library stops with PG_ERR_CANCELLED (history unchanged, the session usable), and the
# finally joins the worker, so nothing is left half-run. That cancellation is ours and is not
# reported; the consumer's own exception propagates as it is. The worker is a daemon thread and
# is not joined from itself or during interpreter shutdown, so an abandoned stream never hangs
# the process. At interpreter exit every chat still running (streamed, or blocking in any
# thread) is cancelled at its next piece and awaited before finalization starts (_CallsInFlight):
# a ctypes callback entering a finalizing interpreter from a daemon thread can crash it.
#
# Thread safety. A session is used from one thread at a time (pandagpt.h): a call made while
# another call on it runs raises SessionBusyError rather than racing. An unfinished stream holds
# the session until it ends; a call that changes the session (chat, reset, eval_*) made from the
# stream's own thread cancels it first (the stream then raises CancelledError if resumed), and
# close() always does.
from __future__ import annotations

import ctypes
import functools
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Literal, Optional, Sequence, Union, overload

import numpy as np

from . import _raw
from ._handle import _Handle
from ._raw import Status
from ._turn import (BY_CONSUMER, IN_FLIGHT, Turn, chat_call, decode_piece, release_session,
                    run_turn)
from ._util import INT32_MAX, UINT64_MAX, int32, int_in
from .errors import InvalidArgumentError, SessionBusyError, check, error_for, last_error
from .media import Media
from .model import Model

MediaArg = Union[Media, Sequence[Media], None]
OnPiece = Callable[[str], Optional[bool]]


@dataclass(frozen=True)
class Timings:
    """Where the time of the last chat turn went (pg_timings)."""
    n_reused: int       #: prompt positions kept from the KV cache
    n_prompt: int       #: prompt positions evaluated
    prompt_ms: float    #: wall time evaluating them
    n_generated: int    #: tokens sampled
    n_decode: int       #: generated tokens evaluated
    decode_ms: float    #: wall time of generation


# ---- Session


class Session:
    """One conversation on a Model: its history, modality slot and KV cache.

        with Session(model) as s:
            for piece in s.chat("What is in this picture?", media=[photo]):
                print(piece, end="", flush=True)

    n_ctx is the KV cache size in positions (0: the model's context length). The session keeps
    its model alive (closing the model defers its free until its sessions are closed). Use a
    session from one thread at a time; see the module comment for what happens otherwise."""

    def __init__(self, model: Model, n_ctx: int = 0) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"Session wants a Model, not {type(model).__name__}")
        lib = _raw.lib()
        params = _raw.pg_session_params()
        lib.pg_session_params_init(ctypes.byref(params))
        params.n_ctx = int32(n_ctx, "n_ctx")
        mptr = model._handle.pin()  # held for the session's life, released by its free
        try:
            out = ctypes.POINTER(_raw.pg_session)()
            check(lib.pg_session_new(mptr, ctypes.byref(params), ctypes.byref(out)))
        except BaseException:
            model._handle.unpin()
            raise
        self._model = model
        self._handle = _Handle("Session", out, lib.pg_session_free, parent=model._handle)
        self._finalizer = weakref.finalize(self, self._handle.close)
        self._busy = threading.Lock()
        self._turn: Optional[Turn] = None
        self._n_ctx = int(lib.pg_session_n_ctx(out))

    # ---- Claiming the session for one call

    def _claim(self, what: str, supersede: bool) -> Any:
        """Takes the session for one call and returns its pinned pointer. An unfinished stream
        started on this thread is cancelled first when supersede (the call changes the
        session); otherwise, and for other threads, a busy session raises SessionBusyError."""
        turn = self._turn
        if turn is not None and not turn.done:
            if not supersede or turn.owner != threading.get_ident():
                raise SessionBusyError(
                    f"Session.{what}: a chat stream on this session is unfinished; iterate it "
                    "to the end or close() it first")
            turn.cancel(f"Session.{what} was called before the stream was finished")
            turn.wait()
        if not self._busy.acquire(blocking=False):
            raise SessionBusyError(f"Session.{what}: another call on this session is running "
                                   "(use a session from one thread at a time)")
        try:
            return self._handle.pin()
        except BaseException:
            self._busy.release()
            raise

    def _unclaim(self) -> None:
        self._handle.unpin()
        self._busy.release()

    class _Call:
        """`with session._call(what) as ptr:` — _claim/_unclaim around a block."""

        def __init__(self, session: "Session", what: str, supersede: bool) -> None:
            self.session, self.what, self.supersede = session, what, supersede

        def __enter__(self) -> Any:
            return self.session._claim(self.what, self.supersede)

        def __exit__(self, *exc: Any) -> None:
            self.session._unclaim()

    def _call(self, what: str, supersede: bool = True) -> "Session._Call":
        return Session._Call(self, what, supersede)

    # ---- Chat

    @overload
    def chat(self, text: str, media: MediaArg = None, *, max_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
             seed: Optional[int] = None, stream: "Optional[Literal[True]]" = None,
             on_piece: None = None) -> Iterator[str]: ...

    @overload
    def chat(self, text: str, media: MediaArg = None, *, max_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
             seed: Optional[int] = None, stream: "Literal[False]",
             on_piece: Optional[OnPiece] = None) -> str: ...

    @overload
    def chat(self, text: str, media: MediaArg = None, *, max_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
             seed: Optional[int] = None, stream: None = None,
             on_piece: OnPiece) -> str: ...

    def chat(self, text: str, media: MediaArg = None, *, max_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
             seed: Optional[int] = None, stream: Optional[bool] = None,
             on_piece: Optional[OnPiece] = None) -> Union[Iterator[str], str]:
        """One chat turn: PandaGPT's conversation template, text, and media summed into the
        modality slot (the first turn with media fixes it; reset() to talk about others).

        Sampling options left None keep the PandaGPT demo defaults (max_tokens 256, temperature
        1.0, top_k 50, top_p 0.01, repeat_penalty 1.0, seed 0); temperature 0 is greedy.

        stream=True (the default without on_piece) returns a generator of str pieces; the turn
        runs while it is iterated, and stopping early cancels it. stream=False runs the turn
        here and returns the whole answer; on_piece(piece), if given, is called with each piece
        as it comes (it may return True to stop: the text so far is returned). An exception in
        on_piece or in the loop over the stream cancels the turn and propagates. A turn that
        did not complete leaves the history unchanged."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        raw = text.encode("utf-8")
        if b"\0" in raw:
            raise InvalidArgumentError("text contains a NUL character")
        medias = _media_list(media)
        params = self._generate_params(max_tokens, temperature, top_k, top_p, repeat_penalty,
                                       seed)
        if stream is None:
            stream = on_piece is None
        if stream and on_piece is not None:
            raise InvalidArgumentError("on_piece goes with stream=False (a stream yields the "
                                       "pieces itself)")
        if stream:
            return self._stream_turn(raw, medias, params)
        return self._blocking_turn(raw, medias, params, on_piece)

    @staticmethod
    def _generate_params(max_tokens: Optional[int], temperature: Optional[float],
                         top_k: Optional[int], top_p: Optional[float],
                         repeat_penalty: Optional[float],
                         seed: Optional[int]) -> _raw.pg_generate_params:
        g = _raw.pg_generate_params()
        _raw.lib().pg_generate_params_init(ctypes.byref(g))
        if max_tokens is not None:
            g.max_tokens = int32(max_tokens, "max_tokens")
        if top_k is not None:
            g.top_k = int32(top_k, "top_k")
        if seed is not None:
            g.seed = int_in(seed, 0, UINT64_MAX, "seed")
        for name, value in (("temperature", temperature), ("top_p", top_p),
                            ("repeat_penalty", repeat_penalty)):
            if value is not None:
                setattr(g, name, float(value))  # range checks: pg_session_chat's
        return g

    def _pin_media(self, medias: List[Media]) -> "tuple[List[_Handle], Any, int]":
        """Pins every media; returns their handles and the C array of pointers."""
        pinned: List[_Handle] = []
        try:
            ptrs = []
            for m in medias:
                ptrs.append(m._handle.pin())
                pinned.append(m._handle)
        except BaseException:
            for h in pinned:
                h.unpin()
            raise
        if not ptrs:
            return pinned, None, 0
        arr = (ctypes.POINTER(_raw.pg_media) * len(ptrs))(*ptrs)
        return pinned, arr, len(ptrs)

    def _blocking_turn(self, raw: bytes, medias: List[Media], params: Any,
                       on_piece: Optional[OnPiece]) -> str:
        lib = _raw.lib()
        pieces: List[str] = []
        caught: List[BaseException] = []
        stopped = False

        def on_c_piece(piece: Any, length: int, token: int, user_data: Any) -> int:
            nonlocal stopped
            if IN_FLIGHT.stopping:
                return 1
            try:
                text = decode_piece(piece, length)
                pieces.append(text)
                if on_piece is not None and on_piece(text):
                    stopped = True
                    return 1
                return 0
            except BaseException as e:  # incl. KeyboardInterrupt: stop, then re-raise below
                caught.append(e)
                return 1

        # A callback even without on_piece: the interpreter runs signal handlers in it, so
        # Ctrl-C stops a long answer.
        callback = _raw.pg_token_callback(on_c_piece)
        sptr = self._claim("chat", supersede=True)
        try:
            pinned, arr, n = self._pin_media(medias)
            try:
                IN_FLIGHT.enter()
                try:
                    status = lib.pg_session_chat(sptr, raw, arr, n, ctypes.byref(params),
                                                 callback, None)
                finally:
                    IN_FLIGHT.leave()
                message = last_error() if status != Status.OK else ""
            finally:
                for h in pinned:
                    h.unpin()
        finally:
            self._unclaim()
        if caught:
            try:
                raise caught[0]
            finally:
                caught.clear()
        if status == Status.CANCELLED and stopped:
            return "".join(pieces)
        if status != Status.OK:
            raise error_for(status, message)
        return "".join(pieces)

    def _start_turn(self, raw: bytes, medias: List[Media], params: Any) -> Turn:
        lib = _raw.lib()
        sptr = self._claim("chat", supersede=True)
        try:
            pinned, arr, n = self._pin_media(medias)
        except BaseException:
            self._unclaim()
            raise
        release = functools.partial(release_session, self._handle, self._busy, pinned)
        try:
            turn = Turn()
            call = functools.partial(chat_call, lib, sptr, raw, arr, n, params)
            turn.thread = threading.Thread(target=run_turn, args=(turn, call, release),
                                           name="pandagpt-chat", daemon=True)
            IN_FLIGHT.enter(turn)
        except BaseException:
            release()
            raise
        try:
            turn.thread.start()
        except BaseException:
            IN_FLIGHT.leave()
            release()
            raise
        self._turn = turn
        return turn

    def _stream_turn(self, raw: bytes, medias: List[Media], params: Any) -> Iterator[str]:
        turn = self._start_turn(raw, medias, params)
        try:
            while True:
                piece = turn.next_piece()
                if piece is None:
                    break
                yield piece
        finally:
            # During interpreter shutdown the worker is left waiting: woken, it would run
            # Python code in a dying interpreter; its pins keep the C objects alive until the
            # process ends.
            if not sys.is_finalizing():
                turn.cancel(BY_CONSUMER)  # no-op when the call has returned
                turn.wait()
        turn.raise_for_status()

    # ---- State

    @property
    def model(self) -> Model:
        """The model this session runs on."""
        return self._model

    @property
    def answer(self) -> str:
        """The answer of the last chat turn (of a cancelled one: what was streamed so far)."""
        lib = _raw.lib()
        n = ctypes.c_size_t()
        with self._call("answer", supersede=False) as s:
            cap = 256
            while True:
                buf = ctypes.create_string_buffer(cap)
                st = lib.pg_session_answer(s, buf, cap, ctypes.byref(n))
                if st == Status.INVALID_ARGUMENT and n.value >= cap:
                    cap = n.value + 1
                    continue
                check(st)
                return buf.raw[:n.value].decode("utf-8", "replace")

    @property
    def timings(self) -> Timings:
        """Timings of the last chat turn (zeros before the first)."""
        lib = _raw.lib()
        t = _raw.pg_timings()
        t.struct_size = ctypes.sizeof(t)
        with self._call("timings", supersede=False) as s:
            check(lib.pg_session_timings(s, ctypes.byref(t)))
        return Timings(t.n_reused, t.n_prompt, t.prompt_ms, t.n_generated, t.n_decode,
                       t.decode_ms)

    @property
    def n_past(self) -> int:
        """Positions held in the KV cache now."""
        with self._call("n_past", supersede=False) as s:
            return int(_raw.lib().pg_session_n_past(s))

    @property
    def n_ctx(self) -> int:
        """The KV cache's capacity in positions."""
        return self._n_ctx

    def reset(self) -> None:
        """Forgets the history, the modality slot, the KV cache contents and the last answer."""
        with self._call("reset") as s:
            check(_raw.lib().pg_session_reset(s))

    # ---- Low level

    def eval_tokens(self, tokens: Union[Sequence[int], np.ndarray]) -> None:
        """Evaluates token ids at the next positions of the KV cache (logits() then gives the
        last one's logits). Raises ContextFullError, evaluating nothing, when they do not
        fit."""
        arr = np.asarray(tokens)
        if arr.size == 0:
            arr = arr.astype(np.int32)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise InvalidArgumentError(f"eval_tokens wants a 1-D sequence of ints, got "
                                       f"{arr.dtype} of shape {arr.shape}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > INT32_MAX):
            raise InvalidArgumentError(f"eval_tokens: token ids must lie in [0, {INT32_MAX}], "
                                       f"got {int(arr.min())}..{int(arr.max())}")
        arr = np.ascontiguousarray(arr, dtype=np.int32)
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        with self._call("eval_tokens") as s:
            check(_raw.lib().pg_session_eval_tokens(s, ptr, arr.size))

    def eval_embeddings(self, rows: np.ndarray) -> None:
        """Evaluates input embedding rows given directly: shape (n_rows, n_embd), or (n_embd,)
        for one row (PandaGPT's modality slot is one such row)."""
        arr = np.ascontiguousarray(rows, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        n_embd = self._model.n_embd
        if arr.ndim != 2 or arr.shape[1] != n_embd:
            raise InvalidArgumentError(f"eval_embeddings wants shape (n_rows, {n_embd}), got "
                                       f"{np.shape(rows)}")
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        with self._call("eval_embeddings") as s:
            check(_raw.lib().pg_session_eval_embeddings(s, ptr, arr.shape[0]))

    def logits(self) -> np.ndarray:
        """The logits of the last evaluated position: float32 [n_vocab] (a copy)."""
        n = self._model.n_vocab
        out = np.empty(n, dtype=np.float32)
        with self._call("logits", supersede=False) as s:
            check(_raw.lib().pg_session_logits(
                s, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n))
        return out

    # ---- Life cycle

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._handle.closed

    def close(self) -> None:
        """Cancels an unfinished stream, then frees the session (and the model's C object, if
        the model was closed and this was its last session). Idempotent."""
        turn = self._turn
        if turn is not None:
            turn.cancel("the session was closed")
            turn.wait()
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<pandagpt.Session closed>"
        return f"<pandagpt.Session n_ctx={self._n_ctx}>"


def _media_list(media: MediaArg) -> List[Media]:
    if media is None:
        return []
    if isinstance(media, Media):
        return [media]
    items = list(media)
    for m in items:
        if not isinstance(m, Media):
            raise TypeError(f"media must be Media objects, not {type(m).__name__}")
    return items
