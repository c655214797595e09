# tests/python/test_llama_reference.py — tokenizer and logits through the bindings against the
# reference data of ../shared/reference/llama (see its README.md): SentencePiece's ids for the
# 257 tokenizer cases, and llama.cpp's goldens for tiny-f32 and tiny-f16. The comparison follows
# tests/golden/test_llama_golden.c: tolerances relative to max |logit| (F32 1e-5, F16 2e-3), the
# greedy tokens compared while the golden's top-2 margin exceeds the tolerance, teacher-forced
# afterwards.
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest

import pandagpt

PROMPTS = ("human", "vicuna", "unicode")
TOLERANCE = {"tiny-f32": 1e-5, "tiny-f16": 2e-3}


@pytest.fixture(scope="module", params=sorted(TOLERANCE))
def tiny(request: Any, reference_dir: Path) -> Iterator[pandagpt.Model]:
    path = reference_dir / "llama" / f"{request.param}.gguf"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    model = pandagpt.Model(path, device="cpu", n_threads=2)
    model.name = request.param  # type: ignore[attr-defined]
    yield model
    model.close()


def _cases(reference_dir: Path) -> List[Dict[str, Any]]:
    with open(reference_dir / "llama" / "tok_cases.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_tokenize_cases(tiny: pandagpt.Model, reference_dir: Path) -> None:
    cases = _cases(reference_dir)
    assert len(cases) == 257
    wrong = []
    for c in cases:
        got = tiny.tokenize(c["text"], add_bos=False)
        if got != c["ids"]:
            wrong.append(f"case {c['n']} {c['text']!r}: want {c['ids']}, got {got}")
        elif tiny.tokenize(c["text"]) != [1] + c["ids"]:
            wrong.append(f"case {c['n']}: add_bos=True does not prepend BOS 1")
    assert not wrong, f"{len(wrong)} of {len(cases)} cases differ:\n" + "\n".join(wrong[:20])


def test_token_pieces_rebuild_the_text(tiny: pandagpt.Model, reference_dir: Path) -> None:
    # decoded output of the ids is the text behind SentencePiece's dummy-prefix space
    wrong = []
    for c in _cases(reference_dir):
        if not c["text"]:
            continue
        got = b"".join(tiny.token_to_piece(i) for i in c["ids"])
        if got != (" " + c["text"]).encode("utf-8"):
            wrong.append(f"case {c['n']}: {got!r} vs {(' ' + c['text'])!r}")
    assert not wrong, "\n".join(wrong[:20])
    assert tiny.token_to_piece(1) == b"" and tiny.token_to_piece(2) == b""  # <s>, </s>
    assert tiny.token_to_piece(3 + 0x41) == b"A"  # byte token <0x41>


def _golden(reference_dir: Path, model: str, prompt: str) -> Dict[str, Any]:
    with open(reference_dir / "llama" / "golden" / f"{model}.{prompt}.json",
              encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_match_llama_cpp(tiny: pandagpt.Model, reference_dir: Path, prompt: str) -> None:
    name = tiny.name  # type: ignore[attr-defined]
    tol = TOLERANCE[name]
    g = _golden(reference_dir, name, prompt)
    assert tiny.n_vocab == g["n_vocab"]
    tokens = tiny.tokenize(g["prompt"])
    assert tokens == g["tokens"], f"{name}/{prompt}: tokenisation differs from llama.cpp"

    # the whole prompt at once
    with pandagpt.Session(tiny) as s:
        s.eval_tokens(tokens)
        assert s.n_past == len(tokens)
        batch = s.logits()
    assert batch.dtype == np.float32 and batch.shape == (g["n_vocab"],)

    # token by token: every position's mean and RMS, then the continuation
    with pandagpt.Session(tiny) as s:
        for i, t in enumerate(tokens):
            s.eval_tokens([t])
            row = s.logits().astype(np.float64)
            scale = np.abs(row).max()
            assert abs(row.mean() - g["pos_mean"][i]) / scale <= tol, f"{prompt} pos {i} mean"
            assert abs(np.sqrt((row ** 2).mean()) - g["pos_rms"][i]) / scale <= tol, \
                f"{prompt} pos {i} rms"
        logits = s.logits()
        scale = float(np.abs(logits).max())
        assert np.abs(logits - batch).max() / scale <= 1e-5, "batch vs token-by-token"

        top = np.array(g["last_top10"])
        err = np.abs(logits[top[:, 0].astype(int)] - top[:, 1]).max() / scale
        assert err <= tol, f"{name}/{prompt}: top-10 logits off by {err:.3g} (relative)"
        full_path = reference_dir / "llama" / "golden" / f"{name}.{prompt}.last.f32"
        if full_path.is_file():
            full = np.fromfile(full_path, "<f4")
            err = np.abs(logits - full).max() / np.abs(full).max()
            assert err <= tol, f"{name}/{prompt}: full last logits off by {err:.3g}"

        free_running, matched = True, 0
        for k, want in enumerate(g["gen"]):
            order = np.argsort(logits)[::-1]
            got = int(order[0])
            if logits[order[0]] - logits[order[1]] <= 2 * tol * scale:
                free_running = False
            if free_running:
                assert got == want, f"{name}/{prompt}: greedy step {k} chose {got}, want {want}"
                matched += 1
            s.eval_tokens([want])  # teacher-forced
            logits = s.logits()
            err = abs(float(logits.max()) - g["gen_top1_logit"][k]) / scale
            assert err <= tol, f"{name}/{prompt}: after step {k} top logit off by {err:.3g}"
        assert s.n_past == len(tokens) + len(g["gen"])
    assert matched >= 1, f"{name}/{prompt}: no greedy step was compared"
