# pandagpt/_raw.py — the raw ctypes mirror of include/pandagpt.h, one to one.
#
# Every PG_API function with its argtypes and restype (FUNCTIONS), every params struct with the
# header's field order and types, the enums with their fixed values, the token callback type and
# the opaque handle types. Nothing here owns anything or checks a status: the owning wrappers are
# in model.py, session.py and media.py. tests/python/test_raw.py parses the header and checks that
# this file declares all of it, with the same types.
#
# Naming: C structs and handles keep their C names (pg_model_params, pg_model); enum members drop
# their C prefix (PG_ERR_FORMAT is Status.FORMAT, PG_MODALITY_IMAGE is Modality.IMAGE).
from __future__ import annotations

import ctypes
import enum
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import Dict, List, Optional, Tuple

from ._loader import load_library

#: The library ABI these declarations follow (SONAME libpandagpt.so.0).
ABI_MAJOR = 0

# ---- Enums (values fixed forever by the header)


class Status(enum.IntEnum):
    """pg_status: the result of every fallible call."""
    OK = 0
    INVALID_ARGUMENT = 1
    IO = 2
    FORMAT = 3
    UNSUPPORTED = 4
    OUT_OF_MEMORY = 5
    DEVICE = 6
    CONTEXT_FULL = 7
    CANCELLED = 8
    INTERNAL = 9


class Device(enum.IntEnum):
    """pg_device: where the model runs."""
    AUTO = 0
    CPU = 1
    CUDA = 2


class Modality(enum.IntEnum):
    """pg_modality: the ImageBind input kinds."""
    IMAGE = 0
    VIDEO = 1
    AUDIO = 2
    DEPTH = 3
    THERMAL = 4
    IMU = 5


# C enums are passed and returned as int.
pg_status = c_int
pg_device = c_int
pg_modality = c_int

# ---- Opaque handles


class pg_model(Structure):
    """Opaque: only pointers to it exist."""


class pg_session(Structure):
    """Opaque: only pointers to it exist."""


class pg_media(Structure):
    """Opaque: only pointers to it exist."""


# ---- Params structs (field order and types exactly as in the header)


class pg_model_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("device", pg_device),
        ("cuda_device", c_int32),
        ("n_threads", c_int32),
        ("encoder_path", c_char_p),
        ("lora_path", c_char_p),
        ("lora_scale", c_float),
    ]


class pg_session_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_ctx", c_int32),
    ]


class pg_generate_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("max_tokens", c_int32),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("repeat_penalty", c_float),
        ("seed", c_uint64),
    ]


class pg_timings(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_reused", c_int32),
        ("n_prompt", c_int32),
        ("prompt_ms", c_double),
        ("n_generated", c_int32),
        ("n_decode", c_int32),
        ("decode_ms", c_double),
    ]


STRUCTS = {cls.__name__: cls for cls in
           (pg_model_params, pg_session_params, pg_generate_params, pg_timings)}

# The piece is not NUL-terminated: POINTER(c_char), read with ctypes.string_at(piece, len).
pg_token_callback = CFUNCTYPE(c_int, POINTER(c_char), c_size_t, c_int32, c_void_p)

# ---- Functions: name -> (restype, argtypes), in the header's order

_model_p = POINTER(pg_model)
_session_p = POINTER(pg_session)
_media_p = POINTER(pg_media)

FUNCTIONS: Dict[str, Tuple[Optional[type], List[type]]] = {
    "pg_version": (c_uint32, []),
    "pg_version_string": (c_char_p, []),
    "pg_status_string": (c_char_p, [pg_status]),
    "pg_last_error": (c_char_p, []),
    "pg_model_params_init": (None, [POINTER(pg_model_params)]),
    "pg_model_load": (pg_status, [c_char_p, POINTER(pg_model_params), POINTER(_model_p)]),
    "pg_model_free": (None, [_model_p]),
    "pg_model_n_vocab": (c_int32, [_model_p]),
    "pg_model_n_embd": (c_int32, [_model_p]),
    "pg_model_embed_dim": (c_int32, [_model_p]),
    "pg_model_proj_dim": (c_int32, [_model_p]),
    "pg_tokenize": (pg_status, [_model_p, c_char_p, c_size_t, c_int, POINTER(c_int32),
                                c_size_t, POINTER(c_size_t)]),
    "pg_token_to_piece": (pg_status, [_model_p, c_int32, POINTER(c_char), c_size_t,
                                      POINTER(c_size_t)]),
    "pg_media_load_file": (pg_status, [pg_modality, c_char_p, POINTER(_media_p)]),
    "pg_media_load_memory": (pg_status, [pg_modality, c_void_p, c_size_t, POINTER(_media_p)]),
    "pg_media_from_rgb8": (pg_status, [pg_modality, POINTER(c_uint8), c_int32, c_int32,
                                       POINTER(_media_p)]),
    "pg_media_from_pcm": (pg_status, [POINTER(c_float), c_size_t, c_int32, c_int32,
                                      POINTER(_media_p)]),
    "pg_media_from_tensor": (pg_status, [pg_modality, POINTER(c_float), POINTER(c_int64),
                                         c_int32, POINTER(_media_p)]),
    "pg_media_free": (None, [_media_p]),
    "pg_embed": (pg_status, [_model_p, _media_p, POINTER(c_float), c_size_t]),
    "pg_project": (pg_status, [_model_p, POINTER(c_float), c_size_t, POINTER(c_float),
                               c_size_t]),
    "pg_session_params_init": (None, [POINTER(pg_session_params)]),
    "pg_session_new": (pg_status, [_model_p, POINTER(pg_session_params), POINTER(_session_p)]),
    "pg_session_free": (None, [_session_p]),
    "pg_session_reset": (pg_status, [_session_p]),
    "pg_generate_params_init": (None, [POINTER(pg_generate_params)]),
    "pg_session_chat": (pg_status, [_session_p, c_char_p, POINTER(_media_p), c_size_t,
                                    POINTER(pg_generate_params), pg_token_callback, c_void_p]),
    "pg_session_answer": (pg_status, [_session_p, POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    "pg_session_timings": (pg_status, [_session_p, POINTER(pg_timings)]),
    "pg_session_eval_tokens": (pg_status, [_session_p, POINTER(c_int32), c_size_t]),
    "pg_session_eval_embeddings": (pg_status, [_session_p, POINTER(c_float), c_size_t]),
    "pg_session_logits": (pg_status, [_session_p, POINTER(c_float), c_size_t]),
    "pg_session_n_past": (c_int32, [_session_p]),
    "pg_session_n_ctx": (c_int32, [_session_p]),
}


def declare(cdll: ctypes.CDLL) -> None:
    """Sets argtypes and restype of every function in FUNCTIONS on cdll.

    Raises OSError naming the missing symbols when cdll lacks some (a library older than these
    bindings)."""
    missing = [name for name in FUNCTIONS if not hasattr(cdll, name)]
    if missing:
        raise OSError(f"{cdll._name} is not a libpandagpt these bindings can use: it lacks "
                      + ", ".join(missing))
    for name, (restype, argtypes) in FUNCTIONS.items():
        fn = getattr(cdll, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path = ""


def lib() -> ctypes.CDLL:
    """The loaded, declared libpandagpt (opened at the first call; see _loader for where)."""
    global _lib, _lib_path
    if _lib is None:
        with _lock:
            if _lib is None:
                cdll, where = load_library()
                declare(cdll)
                major = cdll.pg_version() >> 16
                if major != ABI_MAJOR:
                    raise OSError(f"{where}: libpandagpt {cdll.pg_version_string().decode()} has "
                                  f"ABI {major}; these bindings need ABI {ABI_MAJOR}")
                _lib_path = where
                _lib = cdll
    return _lib


def library_path() -> str:
    """Where the loaded library came from (a path, or the name the system loader resolved)."""
    lib()
    return _lib_path
