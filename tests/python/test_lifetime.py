# tests/python/test_lifetime.py — ownership: every C object freed once, children before parents,
# in whatever order Python lets go of the wrappers; closed objects refuse use with ClosedError
# instead of touching freed memory. The orders that could crash run in child processes, so that a
# crash is a failed test with its output rather than a dead test run.
from __future__ import annotations

import gc
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import child_env, run_python

import pandagpt
from pandagpt import Media, Model, Session

GREEDY: Dict[str, Any] = dict(max_tokens=12, temperature=0.0)


def _model(demo_dir: Path) -> Model:
    return Model(demo_dir / "demo-llm.gguf", encoder=demo_dir / "demo-encoder.gguf",
                 device="cpu")


def test_session_keeps_its_model_alive(demo_dir: Path) -> None:
    model = _model(demo_dir)
    want = Session(model).chat("Hello", stream=False, **GREEDY)
    session = Session(model)
    del model
    gc.collect()
    assert session.chat("Hello", stream=False, **GREEDY) == want
    assert session.model.n_vocab > 0


def test_model_close_is_deferred_until_its_sessions_close(demo_dir: Path,
                                                          demo_image: Media) -> None:
    model = _model(demo_dir)
    a, b = Session(model), Session(model)
    want = a.chat("Hello", stream=False, **GREEDY)
    model.close()
    assert model.closed
    with pytest.raises(pandagpt.ClosedError, match="Model is closed"):
        model.tokenize("x")
    with pytest.raises(pandagpt.ClosedError):
        model.embed(demo_image)
    with pytest.raises(pandagpt.ClosedError):
        Session(model)
    assert model._handle._ptr is not None  # still held by the two sessions
    assert "".join(b.chat("Hello", **GREEDY)) == want
    a.close()
    assert model._handle._ptr is not None
    b.close()
    assert model._handle._ptr is None  # freed after its last session


def test_close_twice_and_use_after_close(demo_dir: Path, demo_image: Media) -> None:
    with _model(demo_dir) as model:
        with Session(model) as s:
            s.chat("Hi", stream=False, **GREEDY)
        s.close()
        for call in (lambda: s.chat("Hi", stream=False), lambda: "".join(s.chat("Hi")),
                     lambda: s.n_past, lambda: s.answer, lambda: s.timings, s.reset,
                     s.logits, lambda: s.eval_tokens([1])):
            with pytest.raises(pandagpt.ClosedError, match="Session is closed"):
                call()
        assert s.n_ctx > 0 and "closed" in repr(s)
        media = Media.load(demo_dir / "demo.png")
        media.close()
        media.close()
        with pytest.raises(pandagpt.ClosedError, match="Media is closed"):
            model.embed(media)
        with Session(model) as s2, pytest.raises(pandagpt.ClosedError):
            s2.chat("What?", media=[demo_image, media], stream=False)
    model.close()
    with pytest.raises(pandagpt.ClosedError):
        model.tokenize("x")


def test_media_closed_during_a_stream_is_freed_after_it(demo_dir: Path) -> None:
    with _model(demo_dir) as model, Session(model) as s:
        media = Media.load(demo_dir / "demo.png")
        stream = s.chat("What is this?", media=[media], **GREEDY)
        first = next(stream)
        media.close()  # the running turn still holds it
        assert media._handle._ptr is not None
        rest = "".join(stream)
        assert first + rest == s.answer
        assert media._handle._ptr is None


ODD_ORDERS = """
import gc, itertools, sys
import pandagpt
from pandagpt import Media, Model, Session

demo = sys.argv[1]
def build():
    m = Model(demo + "/demo-llm.gguf", encoder=demo + "/demo-encoder.gguf", device="cpu")
    s1, s2 = Session(m), Session(m)
    md = Media.load(demo + "/demo.png")
    s1.chat("Hi", media=[md], stream=False, max_tokens=4)
    return {"model": m, "s1": s1, "s2": s2, "media": md}

n = 0
for order in itertools.permutations(["model", "s1", "s2", "media"]):
    for closing in (False, True):
        objs = build()
        for name in order:
            if closing:
                objs[name].close()
            del objs[name]
            gc.collect()
        n += 1

# reference cycles: the wrappers found by the cycle collector in one go
for _ in range(3):
    objs = build()
    objs["self"] = objs
    objs["s1"].cycle = objs
    del objs
    gc.collect()

# an unfinished stream and a live session of a dropped model, left to interpreter exit
m = Model(demo + "/demo-llm.gguf", device="cpu")
s = Session(m)
del m
stream = s.chat("Tell me a story", max_tokens=200)
print(next(stream) is not None, n)
"""


def test_odd_orders_and_interpreter_exit(demo_dir: Path) -> None:
    run = run_python(["-c", ODD_ORDERS, str(demo_dir)], child_env())
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert run.stdout.split() == ["True", "48"]
    assert run.stderr == "", run.stderr  # no "Exception ignored in ..." at exit


def test_exit_while_a_blocking_chat_runs_in_a_thread(demo_dir: Path) -> None:
    code = textwrap.dedent("""
        import sys, threading
        import pandagpt
        m = pandagpt.Model(sys.argv[1] + "/demo-llm.gguf", device="cpu")
        s = pandagpt.Session(m)
        started = threading.Event()
        def run():
            s.chat("Hi", on_piece=lambda p: started.set(), max_tokens=100000, temperature=1,
                   top_p=1, top_k=0)
        threading.Thread(target=run, daemon=True).start()
        started.wait()
        print("exiting")
    """)
    run = run_python(["-c", code, str(demo_dir)], child_env())
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert run.stdout.strip() == "exiting"
