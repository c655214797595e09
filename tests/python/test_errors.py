# tests/python/test_errors.py — failures surface as the exception of their pg_status, with the
# library's message (naming the file or the argument at fault), and leave everything usable.
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pandagpt
from pandagpt import Media, Model, Session, Status


def test_missing_files(tmp_path: Path, demo_dir: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(pandagpt.FileError) as e:
        Model(missing)
    assert e.value.status == Status.IO and str(missing) in str(e.value)
    assert isinstance(e.value, OSError) and isinstance(e.value, pandagpt.PandaGPTError)
    with pytest.raises(pandagpt.FileError, match="no-such-encoder"):
        Model(demo_dir / "demo-llm.gguf", encoder=tmp_path / "no-such-encoder.gguf")
    picture = tmp_path / "missing.png"
    with pytest.raises(pandagpt.FileError) as e:
        Media.load(picture)
    assert str(picture) in e.value.message


def test_malformed_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(200)))
    with pytest.raises(pandagpt.FormatError) as e:
        Model(junk)
    assert e.value.status == Status.FORMAT and e.value.message
    fake_png = tmp_path / "fake.png"
    fake_png.write_bytes(b"this is not a picture" * 10)
    with pytest.raises((pandagpt.FormatError, pandagpt.UnsupportedError)):
        Media.load(fake_png)
    with pytest.raises((pandagpt.FormatError, pandagpt.UnsupportedError)):
        Media.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "image")


def test_bad_arguments(demo_dir: Path, demo_model: Model) -> None:
    with pytest.raises(pandagpt.InvalidArgumentError) as e:
        Model(None)  # no path at all
    assert e.value.status == Status.INVALID_ARGUMENT and isinstance(e.value, ValueError)
    with pytest.raises(pandagpt.InvalidArgumentError):
        Model(demo_dir / "demo-llm.gguf", lora_scale=float("nan"))
    with pytest.raises(pandagpt.InvalidArgumentError, match="device"):
        Model(demo_dir / "demo-llm.gguf", device="tpu")
    with pytest.raises(pandagpt.InvalidArgumentError):
        Model(demo_dir / "demo-llm.gguf", n_threads=1 << 40)  # would wrap in an int32_t

    with pytest.raises(pandagpt.InvalidArgumentError):
        demo_model.token_to_piece(demo_model.n_vocab)
    with pytest.raises(pandagpt.InvalidArgumentError):
        demo_model.token_to_piece(-1)

    with Session(demo_model) as s:
        with pytest.raises(pandagpt.InvalidArgumentError, match="temperature"):
            s.chat("hi", temperature=-1.0, stream=False)
        with pytest.raises(pandagpt.InvalidArgumentError, match="top_p"):
            "".join(s.chat("hi", top_p=2.0))  # a stream reports it while iterated
        with pytest.raises(pandagpt.InvalidArgumentError, match="max_tokens"):
            s.chat("hi", max_tokens=0, stream=False)
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.chat("hi", max_tokens=1 << 40)
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.chat("hi", seed=-1)
        with pytest.raises(TypeError):
            s.chat("hi", media=["cat.jpg"])  # type: ignore[list-item]  # not Media
        with pytest.raises(pandagpt.InvalidArgumentError, match="stream=False"):
            s.chat("hi", stream=True, on_piece=print)  # type: ignore[call-overload]
        with pytest.raises(pandagpt.InvalidArgumentError, match="n_rows"):
            s.eval_embeddings(np.zeros(demo_model.n_embd + 1, dtype=np.float32))
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.eval_tokens([demo_model.n_vocab])
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.eval_tokens([-1])
        with pytest.raises(pandagpt.InvalidArgumentError):
            s.eval_tokens([])
        assert s.n_past == 0
        # after all of that the session works
        assert s.chat("hi", max_tokens=4, stream=False) is not None
    with pytest.raises(pandagpt.InvalidArgumentError):
        Session(demo_model, n_ctx=-1)


def test_media_arguments(tmp_path: Path) -> None:
    with pytest.raises(pandagpt.InvalidArgumentError, match="224"):
        Media.from_tensor("image", np.zeros((3, 100, 100), dtype=np.float32))
    with pytest.raises(pandagpt.InvalidArgumentError):
        Media.from_tensor("depth", np.full((1, 224, 224), np.nan, dtype=np.float32))
    with pytest.raises(pandagpt.InvalidArgumentError):
        Media.from_pcm(np.zeros(10, dtype=np.float32), 16000)  # under 25 ms
    with pytest.raises(pandagpt.InvalidArgumentError):
        Media.from_pcm(np.zeros(16000, dtype=np.float32), 0)
    with pytest.raises(pandagpt.InvalidArgumentError):
        Media.from_rgb8(np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(TypeError):
        Media.from_rgb8(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(pandagpt.InvalidArgumentError, match="modality"):
        Media.from_bytes(b"abc", "smell")
    with pytest.raises(pandagpt.InvalidArgumentError, match="notes.txt"):
        Media.load("notes.txt")
    trace = tmp_path / "trace.bin"
    trace.write_bytes(bytes(6 * 4 * 100))
    with pytest.raises(pandagpt.UnsupportedError, match="(?i)imu"):
        Media.load(trace, modality="imu")  # IMU has no file format: from_tensor


def test_embedding_only_model(demo_dir: Path, demo_image: Media) -> None:
    with Model(None, encoder=demo_dir / "demo-encoder.gguf") as enc:
        assert (enc.n_vocab, enc.n_embd) == (0, 0) and enc.embed_dim > 0
        with pytest.raises(pandagpt.InvalidArgumentError):
            Session(enc)
        with pytest.raises(pandagpt.InvalidArgumentError):
            enc.tokenize("hello")
    with Model(demo_dir / "demo-llm.gguf") as llm:
        assert llm.embed_dim == 0
        with pytest.raises(pandagpt.InvalidArgumentError, match="encoder"):
            llm.embed(demo_image)
        with Session(llm) as s, pytest.raises(pandagpt.InvalidArgumentError):
            s.chat("What is this?", media=[demo_image], stream=False)


def test_cuda_request_is_answered(demo_dir: Path) -> None:
    # where there is no usable device, the failure says why; where there is one, it loads
    try:
        with Model(demo_dir / "demo-llm.gguf", device="cuda") as m:
            assert m.n_vocab > 0
    except (pandagpt.DeviceError, pandagpt.UnsupportedError) as e:
        assert "CUDA" in str(e) or "cuda" in str(e)


def test_error_classes_by_status() -> None:
    from pandagpt.errors import error_for
    expected = {
        Status.INVALID_ARGUMENT: pandagpt.InvalidArgumentError, Status.IO: pandagpt.FileError,
        Status.FORMAT: pandagpt.FormatError, Status.UNSUPPORTED: pandagpt.UnsupportedError,
        Status.OUT_OF_MEMORY: pandagpt.OutOfMemoryError, Status.DEVICE: pandagpt.DeviceError,
        Status.CONTEXT_FULL: pandagpt.ContextFullError, Status.CANCELLED: pandagpt.CancelledError,
        Status.INTERNAL: pandagpt.InternalError,
    }
    for status, cls in expected.items():
        e = error_for(status, "")
        assert type(e) is cls and e.status is status
        assert e.message.startswith("PG_")  # pg_status_string when there is no message
    unknown = error_for(42, "from the future")
    assert type(unknown) is pandagpt.PandaGPTError and unknown.status == 42
