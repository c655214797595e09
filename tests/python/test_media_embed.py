# tests/python/test_media_embed.py — media and embeddings through the bindings, against the C
# library driven by pandagpt-cli (`embed --json`, the same library and thread count: the vectors
# must agree to 1e-6), and the media constructors against each other (the same input by file, by
# bytes and by PCM array embeds the same).
from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import pytest
from conftest import load_or_skip

import pandagpt
from pandagpt import Media, Modality

THREADS = 2


@pytest.fixture(scope="module")
def encoder(demo_dir: Path) -> Iterator[pandagpt.Model]:
    # device "auto" as pandagpt-cli embed has no --device: both run where the library chooses
    model = pandagpt.Model(None, encoder=demo_dir / "demo-encoder.gguf", device="auto",
                           n_threads=THREADS)
    yield model
    model.close()


def _cli_embed(cli: str, demo_dir: Path) -> Dict[str, Any]:
    run = subprocess.run([cli, "embed", "--json", "-t", str(THREADS), "-e",
                          str(demo_dir / "demo-encoder.gguf"), "--image",
                          str(demo_dir / "demo.png"), "--audio", str(demo_dir / "demo.wav")],
                         capture_output=True, text=True, timeout=300)
    if run.returncode == 3:
        pytest.skip(f"pandagpt-cli: this build lacks a decoder: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_embed_equals_the_c_library(encoder: pandagpt.Model, cli: str, demo_dir: Path) -> None:
    image = load_or_skip(demo_dir / "demo.png")
    audio = load_or_skip(demo_dir / "demo.wav")
    assert image.modality == Modality.IMAGE and audio.modality == Modality.AUDIO
    ref = _cli_embed(cli, demo_dir)
    assert ref["embed_dim"] == encoder.embed_dim
    vecs = []
    for media, entry in zip((image, audio), ref["inputs"]):
        assert entry["modality"] == media.modality.name.lower()
        got = encoder.embed(media)
        want = np.array(entry["embedding"], dtype=np.float32)
        assert got.dtype == np.float32 and got.shape == (encoder.embed_dim,)
        err = float(np.abs(got - want).max())
        assert err <= 1e-6, f"{entry['label']}: differs from pandagpt-cli by {err:.3g}"
        assert abs(float(np.linalg.norm(got.astype(np.float64))) - entry["norm"]) <= 1e-6
        vecs.append(got.astype(np.float64))
    cos = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in vecs] for a in vecs])
    assert np.abs(cos - np.array(ref["cosine_similarity"])).max() <= 1e-6
    # image: the L2-normalised vision embedding; audio: a mean of normalised clips (norm <= 1)
    assert abs(np.linalg.norm(vecs[0]) - 1.0) <= 1e-5
    assert np.linalg.norm(vecs[1]) <= 1.0 + 1e-5


def test_constructors_agree(encoder: pandagpt.Model, demo_dir: Path) -> None:
    png, wav = demo_dir / "demo.png", demo_dir / "demo.wav"
    image = load_or_skip(png)
    by_bytes = Media.from_bytes(png.read_bytes(), "image")
    assert (encoder.embed(by_bytes) == encoder.embed(image)).all()
    assert (encoder.embed(Media.load("image", png)) == encoder.embed(image)).all()

    audio = load_or_skip(wav)
    with wave.open(str(wav)) as w:
        assert w.getsampwidth() == 2
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    from_pcm = Media.from_pcm(pcm, rate)
    err = np.abs(encoder.embed(from_pcm) - encoder.embed(audio)).max()
    assert err <= 1e-6, f"PCM from Python's wave module vs libsndfile: {err:.3g}"
    as_float = Media.from_pcm(pcm.astype(np.float32) / 32768.0, rate)
    assert (encoder.embed(as_float) == encoder.embed(from_pcm)).all()

    # thermal from the same PNG: another tower, another vector
    thermal = Media.load(png, modality="thermal")
    assert thermal.modality == Modality.THERMAL
    try:
        t = encoder.embed(thermal)
    except pandagpt.UnsupportedError as e:
        pytest.skip(f"the demo encoder lacks the thermal tower: {e}")
    assert not np.allclose(t, encoder.embed(image))


def test_rgb8_and_tensors(encoder: pandagpt.Model) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    a = encoder.embed(Media.from_rgb8(pixels))
    # the same pixels as a Fortran-ordered array: the bindings make them contiguous
    assert (encoder.embed(Media.from_rgb8(np.asfortranarray(pixels))) == a).all()
    assert not (encoder.embed(Media.from_rgb8(pixels[::-1].copy())) == a).all()
    imu = rng.standard_normal((6, 2000)).astype(np.float32)
    depth = rng.random((1, 224, 224)).astype(np.float32)
    for mod, tensor in ((Modality.IMU, imu), (Modality.DEPTH, depth),
                        (Modality.IMAGE, rng.standard_normal((3, 224, 224)))):
        m = Media.from_tensor(mod, tensor)
        assert m.modality == mod
        try:
            v = encoder.embed(m)
        except pandagpt.UnsupportedError as e:
            pytest.skip(f"the demo encoder lacks the {mod.name.lower()} tower: {e}")
        assert v.shape == (encoder.embed_dim,) and np.isfinite(v).all()
        assert (encoder.embed(Media.from_tensor(mod, tensor[None])) == v).all()  # batch of 1


def test_project_is_affine_and_embedding_only_agrees(encoder: pandagpt.Model,
                                                     demo_model: pandagpt.Model,
                                                     demo_image: pandagpt.Media) -> None:
    v = encoder.embed(demo_image)
    p = encoder.project(v)  # embedding-only: pg_model_proj_dim gives the output size
    assert encoder.proj_dim == demo_model.n_embd == demo_model.proj_dim
    assert p.shape == (demo_model.n_embd,)
    assert (demo_model.project(v) == p).all()
    zero = encoder.project(np.zeros_like(v))  # the bias
    twice = encoder.project(2 * v)
    assert np.allclose(twice - p, p - zero, atol=1e-4)
    assert not np.allclose(p, zero)
    with pytest.raises(pandagpt.InvalidArgumentError, match="pg_project"):
        encoder.project(v[:-1])
    with pytest.raises(pandagpt.InvalidArgumentError):
        encoder.project(np.zeros((2, encoder.embed_dim), dtype=np.float32))


def test_extension_table() -> None:
    want = {"jpg": "IMAGE", "jpeg": "IMAGE", "png": "IMAGE", "wav": "AUDIO", "flac": "AUDIO",
            "ogg": "AUDIO", "mp3": "AUDIO", "mp4": "VIDEO", "mkv": "VIDEO", "webm": "VIDEO",
            "avi": "VIDEO", "mov": "VIDEO"}
    assert {k: v.name for k, v in pandagpt.EXTENSION_MODALITY.items()} == want
    from pandagpt.media import modality_for_path
    assert modality_for_path("A/B/CAT.JPG") == Modality.IMAGE
    assert modality_for_path(Path("x.tar.webm")) == Modality.VIDEO
    with pytest.raises(pandagpt.InvalidArgumentError, match="modality="):
        modality_for_path("notes.txt")
