# tests/python/test_chat.py — chat turns through the bindings on the demo model: streaming
# against the blocking form and pg_session_answer, determinism, multi-turn reuse of the KV cache,
# reset, the context limit, and cancellation from the consumer's side (an exception in the loop or
# in on_piece, break, close, an abandoned generator) leaving the session usable.
from __future__ import annotations

import gc
import threading
import time
from typing import Any, Dict, List

import pytest

import pandagpt
from pandagpt import Session

Q = "What is in this picture?"
SAMPLED: Dict[str, Any] = dict(max_tokens=40, temperature=0.9, top_k=0, top_p=0.95, seed=1234)
GREEDY: Dict[str, Any] = dict(max_tokens=24, temperature=0.0)


class UserError(Exception):
    """An exception of the test's own code, raised while consuming pieces."""


def fresh_answer(model: pandagpt.Model, text: str = Q, media: Any = None, **kw: Any) -> str:
    with Session(model) as s:
        return s.chat(text, media=media, stream=False, **kw)


def chat_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pandagpt-chat"]


def test_stream_blocking_on_piece_and_answer_agree(demo_model: pandagpt.Model,
                                                   demo_image: pandagpt.Media) -> None:
    with Session(demo_model) as s:
        pieces = list(s.chat(Q, media=[demo_image], **SAMPLED))
        streamed = "".join(pieces)
        assert len(pieces) >= 5 and all(isinstance(p, str) and p for p in pieces)
        assert s.answer == streamed
        t = s.timings
        assert t.n_reused == 0 and t.n_prompt > 10
        assert 1 <= t.n_generated <= SAMPLED["max_tokens"]
        assert t.n_decode == t.n_generated - 1
        assert t.prompt_ms > 0 and t.decode_ms > 0
    assert fresh_answer(demo_model, media=demo_image, **SAMPLED) == streamed
    got: List[str] = []
    with Session(demo_model) as s:
        assert s.chat(Q, media=demo_image, on_piece=got.append, **SAMPLED) == streamed
        assert got == pieces


def test_greedy_is_deterministic_and_seeds_matter(demo_model: pandagpt.Model) -> None:
    a = fresh_answer(demo_model, "Tell me a story.", **GREEDY)
    assert a and a == fresh_answer(demo_model, "Tell me a story.", seed=99, **GREEDY)
    s1 = fresh_answer(demo_model, "Tell me a story.", temperature=1.0, top_k=0, top_p=1.0,
                      max_tokens=32, seed=1)
    s2 = fresh_answer(demo_model, "Tell me a story.", temperature=1.0, top_k=0, top_p=1.0,
                      max_tokens=32, seed=2)
    assert s1 != s2
    assert s1 == fresh_answer(demo_model, "Tell me a story.", temperature=1.0, top_k=0,
                              top_p=1.0, max_tokens=32, seed=1)


def test_multi_turn_reuses_the_cache_and_reset_forgets(demo_model: pandagpt.Model,
                                                       demo_image: pandagpt.Media) -> None:
    with Session(demo_model) as s:
        assert s.n_past == 0 and s.timings.n_prompt == 0
        first = s.chat(Q, media=[demo_image], stream=False, **GREEDY)
        t1, past1 = s.timings, s.n_past
        assert past1 >= t1.n_prompt
        second = "".join(s.chat("Tell me more.", **GREEDY))
        t2 = s.timings
        assert t2.n_reused >= t1.n_prompt, (t1, t2)
        assert s.n_past > past1
        assert s.answer == second
        s.reset()
        assert s.n_past == 0 and s.answer == ""
        assert s.chat(Q, media=[demo_image], stream=False, **GREEDY) == first
    assert first == fresh_answer(demo_model, media=[demo_image], **GREEDY)


def test_context_full(demo_model: pandagpt.Model) -> None:
    with Session(demo_model, n_ctx=8) as s:
        assert s.n_ctx == 8
        with pytest.raises(pandagpt.ContextFullError) as e:
            s.chat(Q, stream=False)
        assert e.value.status == pandagpt.Status.CONTEXT_FULL and "n_ctx" in str(e.value)
    # room for the prompt and a few tokens: the answer is cut by the context, the pieces streamed
    # until then are the session's answer
    with Session(demo_model) as s:
        s.chat(Q, stream=False, **GREEDY)
        n_prompt = s.timings.n_prompt
    with Session(demo_model, n_ctx=n_prompt + 4) as s:
        pieces: List[str] = []
        with pytest.raises(pandagpt.ContextFullError):
            for p in s.chat(Q, max_tokens=200, temperature=0.0):
                pieces.append(p)
        assert s.answer == "".join(pieces)
        assert s.timings.n_generated == 5
        s.reset()
        assert s.chat("Hi", stream=False, max_tokens=2) is not None


def test_exception_in_the_loop_cancels_and_propagates(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    with Session(demo_model) as s:
        seen = []
        with pytest.raises(UserError):
            for p in s.chat(Q, **GREEDY):
                seen.append(p)
                if len(seen) == 2:
                    raise UserError("stop here")
        assert "".join(seen) == want[:len("".join(seen))]
        # history unchanged: the same question again answers like a fresh session
        assert s.chat(Q, stream=False, **GREEDY) == want
        assert s.timings.n_reused > 0  # the cancelled turn's prompt stayed in the cache
    assert not chat_threads()


def test_exception_in_a_held_stream_then_a_new_chat(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    with Session(demo_model) as s:
        stream = s.chat(Q, **GREEDY)  # the reference keeps the generator alive
        with pytest.raises(UserError):
            for _ in stream:
                raise UserError()
        assert s.chat(Q, stream=False, **GREEDY) == want  # supersedes the unfinished stream
        with pytest.raises(pandagpt.CancelledError):
            next(stream)


def test_exception_in_on_piece_cancels_and_propagates(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    calls = []

    def on_piece(p: str) -> None:
        calls.append(p)
        if len(calls) == 3:
            raise UserError("from on_piece")

    with Session(demo_model) as s:
        with pytest.raises(UserError, match="from on_piece"):
            s.chat(Q, on_piece=on_piece, **GREEDY)
        assert len(calls) == 3
        # KeyboardInterrupt (Ctrl-C arrives in the callback) takes the same path
        with pytest.raises(KeyboardInterrupt):
            s.chat(Q, on_piece=lambda p: (_ for _ in ()).throw(KeyboardInterrupt()), **GREEDY)
        assert s.chat(Q, stream=False, **GREEDY) == want


def test_on_piece_returning_true_stops(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    got: List[str] = []

    def on_piece(p: str) -> bool:
        got.append(p)
        return len(got) == 2  # True: stop here

    with Session(demo_model) as s:
        text = s.chat(Q, on_piece=on_piece, **GREEDY)
        assert len(got) == 2 and text == "".join(got) and want.startswith(text)
        assert s.chat(Q, stream=False, **GREEDY) == want


def test_break_close_and_abandon(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    with Session(demo_model) as s:
        for i, _ in enumerate(s.chat(Q, **GREEDY)):
            if i == 1:
                break
        assert s.chat(Q, stream=False, **GREEDY) == want  # the broken turn left no history

        s.reset()
        stream = s.chat(Q, **GREEDY)
        first = next(stream)
        assert want.startswith(first)
        stream.close()
        assert not chat_threads()
        with pytest.raises(StopIteration):
            next(stream)
        assert "".join(s.chat(Q, **GREEDY)) == want

        s.reset()
        stream = s.chat(Q, **GREEDY)
        next(stream)
        del stream
        gc.collect()
        deadline = time.monotonic() + 30
        while chat_threads() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not chat_threads()
        assert s.chat(Q, stream=False, **GREEDY) == want

        # a stream never started holds nothing
        s.reset()
        unused = s.chat(Q, **GREEDY)
        assert s.chat(Q, stream=False, **GREEDY) == want
        del unused


def test_busy_session(demo_model: pandagpt.Model) -> None:
    with Session(demo_model) as s:
        stream = s.chat(Q, **GREEDY)
        next(stream)
        with pytest.raises(pandagpt.SessionBusyError):
            s.n_past  # a read during the stream would race with the running call
        errors: List[BaseException] = []
        t = threading.Thread(target=lambda: _catch(errors, s.chat, Q, stream=False))
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], pandagpt.SessionBusyError)
        rest = "".join(stream)
        assert rest
        assert s.n_past > 0
        # re-entering the session from its own callback is refused, not a crash
        with pytest.raises(pandagpt.SessionBusyError):
            s.chat(Q, on_piece=lambda p: s.reset(), **GREEDY)


def _catch(errors: List[BaseException], fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except BaseException as e:  # noqa: B902
        errors.append(e)


def test_sessions_run_in_parallel_threads(demo_model: pandagpt.Model) -> None:
    want = fresh_answer(demo_model, **GREEDY)
    results: List[str] = []

    def worker() -> None:
        with Session(demo_model) as s:
            results.append("".join(s.chat(Q, **GREEDY)))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want] * 3


def test_low_level_generation_matches_logits(demo_model: pandagpt.Model,
                                             demo_image: pandagpt.Media) -> None:
    with Session(demo_model) as s:
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.logits()  # nothing evaluated yet
        ids = demo_model.tokenize("Hello there")
        s.eval_tokens(ids)
        a = s.logits()
        assert a.shape == (demo_model.n_vocab,) and s.n_past == len(ids)
        row = demo_model.project(demo_model.embed(demo_image))
        s.eval_embeddings(row)
        assert s.n_past == len(ids) + 1
        b = s.logits()
        assert not (a == b).all()
    with Session(demo_model) as s:  # the same again gives the same logits
        s.eval_tokens(ids)
        assert (s.logits() == a).all()
        s.eval_embeddings(row[None, :])
        assert (s.logits() == b).all()
        with pytest.raises(pandagpt.ContextFullError):
            s.eval_tokens([5] * (s.n_ctx + 1))
