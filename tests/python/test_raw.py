# tests/python/test_raw.py — the raw layer (pandagpt/_raw.py) against include/pandagpt.h.
#
# The header is parsed as text: every PG_API function must be declared with the ctypes types its
# prototype maps to, every params struct must list the same fields in the same order with the same
# types (and so the same offsets), every enum the same values. Then the compiled library itself
# tells the struct sizes: the *_params_init functions write sizeof as it was compiled, and
# pg_session_timings names the first version's size when given too small a struct_size.
from __future__ import annotations

import ctypes
import re
from typing import Any, Dict, List, Tuple

import pytest
from conftest import SOURCE_ROOT

import pandagpt
from pandagpt import _raw

HEADER = (SOURCE_ROOT / "include" / "pandagpt.h").read_text()


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


CODE = _strip_comments(HEADER)

# C scalar types -> ctypes (size and alignment then follow from ctypes on this platform)
_SCALARS = {
    "void": None, "char": ctypes.c_char, "int": ctypes.c_int, "size_t": ctypes.c_size_t,
    "float": ctypes.c_float, "double": ctypes.c_double, "uint8_t": ctypes.c_uint8,
    "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32, "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    # enums are int-sized
    "pg_status": ctypes.c_int, "pg_device": ctypes.c_int, "pg_modality": ctypes.c_int,
    "pg_token_callback": _raw.pg_token_callback,
}


def _named(name: str) -> Any:
    if name in _SCALARS:
        return _SCALARS[name]
    for table in (_raw.STRUCTS, {"pg_model": _raw.pg_model, "pg_session": _raw.pg_session,
                                 "pg_media": _raw.pg_media}):
        if name in table:
            return table[name]
    raise AssertionError(f"the header uses type {name!r}, which the test does not know")


def ctype_of(decl: str) -> Any:
    """The ctypes type a C declaration's type maps to (decl without the parameter name)."""
    decl = " ".join(decl.replace("*", " * ").split())
    words = decl.split()
    stars = words.count("*")
    base = [w for w in words if w not in ("const", "*")]
    assert len(base) == 1, f"cannot parse C type {decl!r}"
    name = base[0]
    if stars == 0:
        return _named(name)
    if stars == 1 and name == "char":
        # const char * is an input string; char * an output buffer
        return ctypes.c_char_p if words[0] == "const" else ctypes.POINTER(ctypes.c_char)
    if stars == 1 and name == "void":
        return ctypes.c_void_p
    t = _named(name)
    for _ in range(stars):
        t = ctypes.POINTER(t)
    return t


def _split_decl(decl: str) -> Tuple[str, str]:
    """'const int32_t *tokens' -> ('const int32_t *', 'tokens')."""
    m = re.match(r"^(.*?)([A-Za-z_]\w*)\s*$", decl.strip(), flags=re.S)
    assert m, f"cannot parse declaration {decl!r}"
    return m.group(1), m.group(2)


def header_functions() -> Dict[str, Tuple[str, List[str]]]:
    out = {}
    for m in re.finditer(r"PG_API\s+([^;(]*?)\s*\b(pg_\w+)\s*\(([^)]*)\)\s*;", CODE):
        ret, name, params = m.group(1), m.group(2), m.group(3).strip()
        args = [] if params in ("void", "") else [p.strip() for p in params.split(",")]
        out[name] = (ret.strip(), [_split_decl(a)[0] for a in args])
    return out


def header_structs() -> Dict[str, List[Tuple[str, str]]]:
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", CODE, flags=re.S):
        assert m.group(1) == m.group(3)
        fields = [_split_decl(f) for f in m.group(2).split(";") if f.strip()]
        out[m.group(1)] = [(name, ctype) for ctype, name in fields]
    return out


def header_enums() -> Dict[str, Dict[str, int]]:
    out = {}
    for m in re.finditer(r"typedef\s+enum\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", CODE, flags=re.S):
        values = {}
        for item in m.group(2).split(","):
            if item.strip():
                k, v = item.split("=")
                values[k.strip()] = int(v)
        out[m.group(1)] = values
    return out


def test_header_parses_to_the_known_api() -> None:
    # guard against a parser that silently finds nothing
    assert len(header_functions()) >= 30
    assert set(header_structs()) == {"pg_model_params", "pg_session_params",
                                     "pg_generate_params", "pg_timings"}
    assert set(header_enums()) == {"pg_status", "pg_device", "pg_modality"}


def test_every_function_is_declared_with_the_header_types() -> None:
    funcs = header_functions()
    assert sorted(funcs) == sorted(_raw.FUNCTIONS), (
        f"in the header only: {sorted(set(funcs) - set(_raw.FUNCTIONS))}; "
        f"in _raw only: {sorted(set(_raw.FUNCTIONS) - set(funcs))}")
    for name, (ret, args) in funcs.items():
        restype, argtypes = _raw.FUNCTIONS[name]
        assert restype == ctype_of(ret), f"{name}: returns {ret}, _raw says {restype}"
        assert len(argtypes) == len(args), f"{name}: {len(args)} parameters, _raw {len(argtypes)}"
        for i, (c, py) in enumerate(zip(args, argtypes)):
            assert py == ctype_of(c), f"{name} parameter {i}: {c!r} is {ctype_of(c)}, _raw {py}"


def test_the_loaded_library_has_them_all() -> None:
    lib = _raw.lib()
    for name, (restype, argtypes) in _raw.FUNCTIONS.items():
        fn = getattr(lib, name)
        assert fn.restype == restype and list(fn.argtypes) == argtypes, name


def test_structs_mirror_the_header() -> None:
    for name, fields in header_structs().items():
        cls = _raw.STRUCTS[name]
        ours = [(f[0], f[1]) for f in cls._fields_]
        assert [f for f, _ in ours] == [f for f, _ in fields], f"{name}: field order differs"
        for (fname, ctype), (_, pytype) in zip(fields, ours):
            assert pytype == ctype_of(ctype), f"{name}.{fname}: {ctype} vs {pytype}"


def test_struct_offsets_follow_c_layout_rules() -> None:
    # offsets computed by the C rules (each field aligned to its own alignment, the size rounded
    # to the largest), independently of ctypes' own layout engine
    for name, fields in header_structs().items():
        cls = _raw.STRUCTS[name]
        off, align_max = 0, 1
        for fname, ctype in fields:
            t = ctype_of(ctype)
            size = ctypes.sizeof(t)
            align = ctypes.alignment(t)
            off = (off + align - 1) // align * align
            assert getattr(cls, fname).offset == off, f"{name}.{fname} at {off}"
            off += size
            align_max = max(align_max, align)
        assert ctypes.sizeof(cls) == (off + align_max - 1) // align_max * align_max, name


def test_enums_have_the_header_values() -> None:
    enums = header_enums()
    for cname, cls, prefix in (("pg_status", pandagpt.Status, ("PG_ERR_", "PG_")),
                               ("pg_device", pandagpt.Device, ("PG_DEVICE_",)),
                               ("pg_modality", pandagpt.Modality, ("PG_MODALITY_",))):
        want = {}
        for k, v in enums[cname].items():
            for p in prefix:
                if k.startswith(p):
                    want[k[len(p):]] = v
                    break
        assert {m.name: m.value for m in cls} == want, cname


def test_init_functions_write_our_sizes_and_the_documented_defaults() -> None:
    lib = _raw.lib()

    def init(fn_name: str, cls: Any) -> Any:
        # a buffer larger than any version of the struct: init writes sizeof as compiled
        buf = (ctypes.c_uint8 * 512)(*([0xAB] * 512))
        getattr(lib, fn_name)(ctypes.cast(buf, ctypes.POINTER(cls)))
        s = cls.from_buffer_copy(bytes(buf)[:ctypes.sizeof(cls)])
        assert s.struct_size == ctypes.sizeof(cls), (
            f"{cls.__name__}: the library's sizeof is {s.struct_size}, ours "
            f"{ctypes.sizeof(cls)}")
        return s

    mp = init("pg_model_params_init", _raw.pg_model_params)
    assert (mp.device, mp.cuda_device, mp.n_threads) == (pandagpt.Device.AUTO, 0, 0)
    assert mp.encoder_path is None and mp.lora_path is None and mp.lora_scale == 1.0
    sp = init("pg_session_params_init", _raw.pg_session_params)
    assert sp.n_ctx == 0
    gp = init("pg_generate_params_init", _raw.pg_generate_params)
    assert (gp.max_tokens, gp.temperature, gp.top_k, gp.repeat_penalty, gp.seed) == \
        (256, 1.0, 50, 1.0, 0)
    assert gp.top_p == pytest.approx(0.01)


def test_timings_size_matches_the_library(demo_model: pandagpt.Model) -> None:
    lib = _raw.lib()
    s = pandagpt.Session(demo_model)
    t = _raw.pg_timings()
    t.struct_size = 8
    with s._handle.use() as ptr:
        st = lib.pg_session_timings(ptr, ctypes.byref(t))
    assert st == pandagpt.Status.INVALID_ARGUMENT
    msg = lib.pg_last_error().decode()
    m = re.search(r"first version's (\d+)", msg)
    assert m, msg
    assert int(m.group(1)) == ctypes.sizeof(_raw.pg_timings)
    s.close()


def test_status_strings_and_version() -> None:
    lib = _raw.lib()
    for st in pandagpt.Status:
        assert lib.pg_status_string(st).decode().startswith("PG_"), st
        assert st.name in lib.pg_status_string(st).decode()
    v = re.search(r"#define PG_VERSION_MAJOR (\d+)\s+#define PG_VERSION_MINOR (\d+)\s+"
                  r"#define PG_VERSION_PATCH (\d+)", HEADER)
    assert v
    want = tuple(int(x) for x in v.groups())
    assert pandagpt.version_info() == want
    assert pandagpt.version() == "%d.%d.%d" % want
