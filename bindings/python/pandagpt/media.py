# pandagpt/media.py — Media: one decoded, preprocessed ImageBind input (owns a pg_media).
#
# Media are immutable and may be shared between threads and sessions; the C object is freed when
# the Media is closed or collected, but never while a call (an embed, a chat turn) uses it.
from __future__ import annotations

import ctypes
import os
import weakref
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _raw
from ._handle import _Handle
from ._raw import Modality
from ._util import INT32_MAX, PathLike, fsencode, int_in, to_enum
from .errors import InvalidArgumentError, check

#: The modality Media.load infers from a file name's extension (lower case, without the dot).
EXTENSION_MODALITY: Dict[str, Modality] = {
    **dict.fromkeys(("jpg", "jpeg", "png"), Modality.IMAGE),
    **dict.fromkeys(("wav", "flac", "ogg", "mp3"), Modality.AUDIO),
    **dict.fromkeys(("mp4", "mkv", "webm", "avi", "mov"), Modality.VIDEO),
}

ModalityLike = Union[Modality, int, str]


def modality_for_path(path: PathLike) -> Modality:
    """The modality a file's extension stands for (EXTENSION_MODALITY); InvalidArgumentError for
    an extension not in the table (then give modality= explicitly)."""
    name = os.fsdecode(os.fspath(path))
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext not in EXTENSION_MODALITY:
        known = ", ".join(sorted(EXTENSION_MODALITY))
        raise InvalidArgumentError(f"{name}: cannot tell the modality from the extension "
                                   f"{'.' + ext if ext else '(none)'} (known: {known}); "
                                   "pass modality=")
    return EXTENSION_MODALITY[ext]


class Media:
    """One ImageBind input, decoded and preprocessed as PandaGPT does (docs/media.md).

    Made by the class methods load, from_bytes, from_rgb8, from_pcm and from_tensor; usable as a
    context manager (closing frees it). Pass it to Model.embed or Session.chat(media=...)."""

    def __init__(self, _ptr: Any, modality: Modality, source: str) -> None:
        """Internal: use the class methods. Takes ownership of a pg_media pointer."""
        lib = _raw.lib()
        self._handle = _Handle("Media", _ptr, lib.pg_media_free)
        self._finalizer = weakref.finalize(self, self._handle.close)
        self._modality = modality
        self._source = source

    # ---- Construction

    @classmethod
    def _make(cls, call: Any, modality: Modality, source: str) -> "Media":
        out = ctypes.POINTER(_raw.pg_media)()
        check(call(ctypes.byref(out)))
        return cls(out, modality, source)

    @classmethod
    def load(cls, *args: Any, modality: Optional[ModalityLike] = None) -> "Media":
        """Decodes a file: Media.load(path) infers the modality from the extension (jpg, jpeg,
        png: image; wav, flac, ogg, mp3: audio; mp4, mkv, webm, avi, mov: video);
        Media.load(path, modality="thermal") or Media.load(modality, path) says it (thermal and
        depth files are PNG/JPEG too). Raises FileError (cannot read), FormatError (not that kind
        of file), UnsupportedError (this build lacks the decoder)."""
        if len(args) == 1:
            path = args[0]
        elif len(args) == 2 and modality is None:
            modality, path = args
        else:
            raise TypeError("Media.load(path, modality=None) or Media.load(modality, path)")
        raw = fsencode(path)
        mod = modality_for_path(path) if modality is None else to_enum(Modality, modality,
                                                                       "modality")
        lib = _raw.lib()
        return cls._make(lambda out: lib.pg_media_load_file(mod, raw, out), mod,
                         os.fsdecode(raw))

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview],
                   modality: ModalityLike) -> "Media":
        """Decodes an encoded file held in memory (JPEG, PNG, WAV, ...); the bytes are not
        kept."""
        mod = to_enum(Modality, modality, "modality")
        buf = bytes(data) if not isinstance(data, bytes) else data
        lib = _raw.lib()
        return cls._make(lambda out: lib.pg_media_load_memory(mod, buf, len(buf), out), mod,
                         f"<{len(buf)} bytes>")

    @classmethod
    def from_rgb8(cls, pixels: np.ndarray, modality: ModalityLike = Modality.IMAGE) -> "Media":
        """From interleaved RGB pixels: a uint8 array of shape (height, width, 3), rows top to
        bottom (IMAGE, or THERMAL which converts them to grey first)."""
        mod = to_enum(Modality, modality, "modality")
        arr = np.asarray(pixels)
        if arr.dtype != np.uint8:
            raise TypeError(f"from_rgb8 wants uint8 pixels, not {arr.dtype}")
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidArgumentError(f"from_rgb8 wants shape (height, width, 3), got "
                                       f"{arr.shape}")
        h = int_in(arr.shape[0], 0, INT32_MAX, "height")
        w = int_in(arr.shape[1], 0, INT32_MAX, "width")
        arr = np.ascontiguousarray(arr)
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        lib = _raw.lib()
        return cls._make(lambda out: lib.pg_media_from_rgb8(mod, ptr, w, h, out), mod,
                         f"<rgb8 {w}x{h}>")

    @classmethod
    def from_pcm(cls, samples: np.ndarray, sample_rate: int) -> "Media":
        """An AUDIO media from PCM samples at any rate: shape (frames,) for mono or (frames,
        channels). Floats are taken as [-1, 1]; integer samples are scaled by their type's full
        range (int16 by 1/32768)."""
        arr = np.asarray(samples)
        if arr.dtype.kind in "iu":
            info = np.iinfo(arr.dtype)
            scale = float(info.max) + 1.0
            mid = 0.0 if info.min < 0 else scale / 2
            arr = (arr.astype(np.float64) - mid) / (scale if info.min < 0 else scale / 2)
        elif arr.dtype.kind != "f":
            raise TypeError(f"from_pcm wants float or integer samples, not {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InvalidArgumentError(f"from_pcm wants shape (frames,) or (frames, channels), "
                                       f"got {np.shape(samples)}")
        rate = int_in(sample_rate, 0, INT32_MAX, "sample_rate")
        channels = int_in(arr.shape[1], 0, INT32_MAX, "channels")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        frames = arr.shape[0]
        lib = _raw.lib()
        return cls._make(lambda out: lib.pg_media_from_pcm(ptr, frames, channels, rate, out),
                         Modality.AUDIO, f"<pcm {frames}x{channels} @ {rate} Hz>")

    @classmethod
    def from_tensor(cls, modality: ModalityLike, tensor: np.ndarray) -> "Media":
        """The encoder's input tensor itself, already preprocessed (float32, copied): IMAGE
        [3,224,224], VIDEO [clips,3,2,224,224], AUDIO [clips,1,128,204], DEPTH and THERMAL
        [1,224,224], IMU [6,N]; a leading batch dimension of 1 is accepted."""
        mod = to_enum(Modality, modality, "modality")
        arr = np.ascontiguousarray(tensor, dtype=np.float32)
        shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        lib = _raw.lib()
        return cls._make(lambda out: lib.pg_media_from_tensor(mod, ptr, shape, arr.ndim, out),
                         mod, f"<tensor {'x'.join(map(str, arr.shape))}>")

    # ---- Properties and life cycle

    @property
    def modality(self) -> Modality:
        """The modality this media was made for."""
        return self._modality

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._handle.closed

    def close(self) -> None:
        """Frees the media (at once, or when the call using it returns). Idempotent."""
        self._finalizer()

    def __enter__(self) -> "Media":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<pandagpt.Media {self._modality.name.lower()} {self._source}{state}>"
