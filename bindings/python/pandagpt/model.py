# pandagpt/model.py — Model: the weights and their device (owns a pg_model).
#
# A Model is immutable after loading and may be shared between threads. Sessions keep it alive:
# each pins the C model for its whole life, so Model.close() with live sessions makes the Model
# unusable at once (ClosedError) but frees the C model only after the last session is closed.
from __future__ import annotations

import ctypes
import weakref
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import _raw
from ._handle import _Handle
from ._raw import Device, Status
from ._util import PathLike, fsencode, int32, to_enum
from .errors import InvalidArgumentError, check, error_for, last_error
from .media import Media

DeviceLike = Union[Device, int, str]


def _parse_device(device: DeviceLike, cuda_device: int) -> "tuple[Device, int]":
    """"auto", "cpu", "cuda" or "cuda:N" (or a Device) and the CUDA ordinal."""
    if isinstance(device, str) and device.lower().startswith("cuda:"):
        ordinal = device.split(":", 1)[1]
        if not ordinal.isdigit():
            raise InvalidArgumentError(f"bad device {device!r} (want cuda:N)")
        return Device.CUDA, int(ordinal)
    return to_enum(Device, device, "device"), cuda_device


class Model:
    """A loaded PandaGPT model: the LLM (Vicuna/LLaMA GGUF), the ImageBind encoders with
    llama_proj, or both.

        with Model("vicuna.gguf", encoder="imagebind.gguf") as model:
            ...

    llm may be None for an embedding-only model (embed and project only, no sessions).
    device is "auto" (CUDA when the build has it and a device is present), "cpu", "cuda" or
    "cuda:N". n_threads 0 uses every online core. lora is an adapter GGUF merged at load.
    Raises FileError, FormatError, UnsupportedError, OutOfMemoryError, DeviceError or
    InvalidArgumentError with the library's message."""

    def __init__(self, llm: Optional[PathLike], encoder: Optional[PathLike] = None,
                 device: DeviceLike = "auto", n_threads: int = 0,
                 lora: Optional[PathLike] = None, lora_scale: float = 1.0,
                 cuda_device: int = 0) -> None:
        lib = _raw.lib()
        params = _raw.pg_model_params()
        lib.pg_model_params_init(ctypes.byref(params))
        dev, ordinal = _parse_device(device, cuda_device)
        params.device = dev
        params.cuda_device = int32(ordinal, "cuda_device")
        params.n_threads = int32(n_threads, "n_threads")
        # the bytes objects live until the call returns; the library copies what it keeps
        enc_path = fsencode(encoder, "encoder") if encoder is not None else None
        lora_path = fsencode(lora, "lora") if lora is not None else None
        params.encoder_path = enc_path
        params.lora_path = lora_path
        params.lora_scale = float(lora_scale)
        llm_path = fsencode(llm, "llm") if llm is not None else None
        out = ctypes.POINTER(_raw.pg_model)()
        check(lib.pg_model_load(llm_path, ctypes.byref(params), ctypes.byref(out)))
        self._handle = _Handle("Model", out, lib.pg_model_free)
        self._finalizer = weakref.finalize(self, self._handle.close)
        self._n_vocab = lib.pg_model_n_vocab(out)
        self._n_embd = lib.pg_model_n_embd(out)
        self._embed_dim = lib.pg_model_embed_dim(out)
        self._proj_dim = lib.pg_model_proj_dim(out)
        self._paths = (llm, encoder)

    # ---- Facts

    @property
    def n_vocab(self) -> int:
        """Rows of the LLM's vocabulary; 0 for an embedding-only model."""
        return self._n_vocab

    @property
    def n_embd(self) -> int:
        """The LLM's hidden size; 0 for an embedding-only model."""
        return self._n_embd

    @property
    def embed_dim(self) -> int:
        """The ImageBind embedding size (1024 for imagebind_huge); 0 without an encoder."""
        return self._embed_dim

    @property
    def closed(self) -> bool:
        """True after close() (the C model may live on until its sessions are closed)."""
        return self._handle.closed

    # ---- Text

    def tokenize(self, text: Union[str, bytes], add_bos: bool = True) -> List[int]:
        """The token ids of text (str as UTF-8, or raw bytes), BOS first when add_bos."""
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        lib = _raw.lib()
        n = ctypes.c_size_t()
        cap = len(raw) + 2  # one token per byte at most, plus the dummy prefix and BOS
        with self._handle.use() as m:
            while True:
                ids = (ctypes.c_int32 * cap)()
                st = lib.pg_tokenize(m, raw, len(raw), int(bool(add_bos)), ids, cap,
                                     ctypes.byref(n))
                if st == Status.INVALID_ARGUMENT and n.value > cap:
                    cap = n.value
                    continue
                check(st)
                return list(ids[:n.value])

    def token_to_piece(self, token: int) -> bytes:
        """The bytes of one token in decoded output (may be part of a UTF-8 character)."""
        tok = int32(token, "token")
        lib = _raw.lib()
        n = ctypes.c_size_t()
        cap = 64
        with self._handle.use() as m:
            while True:
                buf = ctypes.create_string_buffer(cap)
                st = lib.pg_token_to_piece(m, tok, buf, cap, ctypes.byref(n))
                if st == Status.INVALID_ARGUMENT and n.value > cap:
                    cap = n.value
                    continue
                check(st)
                return buf.raw[:n.value]

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of a token sequence as decoded output shows it (control tokens empty)."""
        return b"".join(self.token_to_piece(t) for t in tokens).decode("utf-8", "replace")

    # ---- Embeddings

    def embed(self, media: Media) -> np.ndarray:
        """The ImageBind vector of media as PandaGPT feeds it to llama_proj: float32
        [embed_dim]."""
        if not isinstance(media, Media):
            raise TypeError(f"embed wants a Media, not {type(media).__name__}")
        lib = _raw.lib()
        out = np.empty(max(self._embed_dim, 1), dtype=np.float32)
        with self._handle.use() as m, media._handle.use() as md:
            check(lib.pg_embed(m, md, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                               self._embed_dim))
        return out[:self._embed_dim]

    @property
    def proj_dim(self) -> int:
        """llama_proj's output size H (the LLM hidden size it feeds); 0 without an encoder or
        without llama_proj in it."""
        return self._proj_dim

    def project(self, embedding: np.ndarray) -> np.ndarray:
        """llama_proj applied to one embedding ([embed_dim] floats): float32 [proj_dim]."""
        vec = np.ascontiguousarray(embedding, dtype=np.float32)
        if vec.ndim != 1:
            raise InvalidArgumentError(f"project wants one vector, got shape {vec.shape}")
        lib = _raw.lib()
        fptr = ctypes.POINTER(ctypes.c_float)
        out = np.empty(max(self._proj_dim, 1), dtype=np.float32)
        with self._handle.use() as m:
            # with no llama_proj (proj_dim 0) pg_project says why
            check(lib.pg_project(m, vec.ctypes.data_as(fptr), vec.size,
                                 out.ctypes.data_as(fptr), self._proj_dim))
        return out[:self._proj_dim]

    # ---- Life cycle

    def close(self) -> None:
        """Closes the model: unusable from now on; the C model is freed now, or after its last
        session is closed. Idempotent."""
        self._finalizer()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        llm, enc = self._paths
        state = " closed" if self.closed else ""
        return (f"<pandagpt.Model llm={llm!r} encoder={enc!r} n_vocab={self._n_vocab} "
                f"n_embd={self._n_embd} embed_dim={self._embed_dim}{state}>")
