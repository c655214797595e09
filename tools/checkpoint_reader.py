"""checkpoint_reader.py — reads upstream checkpoints tensor by tensor, without torch.

Three formats, each opened lazily (only names, dtypes and shapes are read up front; a tensor's
bytes are read with pread when the converter asks for them, so a 13B checkpoint never sits in
memory):

* torch.save zip archives (torch >= 1.6: `pytorch_model-*.bin`, PandaGPT's `pytorch_model.pt`,
  `imagebind_huge.pth`). data.pkl is unpickled by a restricted Unpickler that knows only the
  handful of globals a state dict uses (OrderedDict, the typed storages, _rebuild_tensor_v2/v3,
  _rebuild_parameter): a checkpoint cannot run code, unlike torch.load(weights_only=False).
  Tensors may be views into a shared storage at any offset and stride (DeepSpeed's flat buffers).
* safetensors (`model-*.safetensors`): 8-byte header length, JSON header, raw data.
* SentencePiece `tokenizer.model` (a protobuf ModelProto): pieces, scores, types, special ids.

The pre-1.6 (non-zip) torch format is read through torch.load(weights_only=True) when torch is
installed; it is the only path that needs torch.
"""

import collections
import json
import os
import pickle
import struct
import zipfile

import numpy as np


class CheckpointError(Exception):
    """A checkpoint that cannot be read; the message names the file and the key."""


# numpy dtype of each torch storage class / safetensors dtype. BF16 has no numpy dtype: it is read
# as uint16 and widened to float32 by LazyTensor.numpy().
_TORCH_STORAGES = {
    "HalfStorage": "F16", "FloatStorage": "F32", "DoubleStorage": "F64",
    "BFloat16Storage": "BF16", "LongStorage": "I64", "IntStorage": "I32",
    "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL",
}
_NP_DTYPES = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
# torch.dtype names (as _rebuild_tensor_v3 and torch >= 2 storages refer to them)
_TORCH_DTYPE_NAMES = {
    "float16": "F16", "half": "F16", "float32": "F32", "float": "F32", "float64": "F64",
    "double": "F64", "bfloat16": "BF16", "int64": "I64", "long": "I64", "int32": "I32",
    "int": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}


class LazyTensor:
    """One tensor of a checkpoint: dtype (a key of _NP_DTYPES), shape, and how to read it."""

    def __init__(self, path, name, dtype, shape, reader):
        self.path, self.name, self.dtype, self.shape = path, name, dtype, tuple(shape)
        self._reader = reader

    @property
    def numel(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def numpy(self):
        """The values as a C-contiguous array (BF16 widened to float32)."""
        a = self._reader()
        if self.dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return np.ascontiguousarray(a)

    def float32(self):
        return self.numpy().astype(np.float32, copy=False)

    def __repr__(self):
        return f"LazyTensor({self.name!r}, {self.dtype}, {list(self.shape)})"


def _pread_exact(fd, nbytes, offset, path, what):
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:
            raise CheckpointError(f"{path}: {what}: file ends at byte {offset + got}, "
                                  f"{nbytes - got} bytes short")
        got += n
    return buf


# ---------------------------------------------------------------------------------------------
# torch.save zip archives

class _Storage:
    """A persistent-id storage reference: where its bytes are, not the bytes."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data  # an nn.Parameter is its tensor plus requires_grad: the tensor is what we need


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _TorchDtype:
    def __init__(self, name):
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state dict and nothing else: unknown globals are refused, not imported."""

    _FUNCTIONS = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "dict"): dict,
    }

    def __init__(self, fileobj, path):
        super().__init__(fileobj)
        self.path = path

    def find_class(self, module, name):
        fn = self._FUNCTIONS.get((module, name))
        if fn is not None:
            return fn
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(_TORCH_STORAGES[name])
        if module == "torch" and name in _TORCH_DTYPE_NAMES:
            return _TorchDtype(name)
        if module == "torch.storage" and name in ("UntypedStorage", "TypedStorage"):
            return _StorageType("U8")
        raise CheckpointError(f"{self.path}: the pickle asks for {module}.{name}, which a state "
                              f"dict never needs: refusing to unpickle it")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointError(f"{self.path}: unexpected persistent id {pid!r}")
        stype = pid[1]
        if isinstance(stype, _TorchDtype):
            dtype = _TORCH_DTYPE_NAMES[stype.name]
        elif isinstance(stype, _StorageType):
            dtype = stype.dtype
        else:
            raise CheckpointError(f"{self.path}: storage type {stype!r} is not a torch storage")
        return _Storage(str(pid[2]), dtype, int(pid[4]))


def _zip_member_offset(f, info, path):
    """File offset of a STORED zip member's data (after its local header)."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{path}: member {info.filename} is compressed; torch.save "
                              f"archives store members uncompressed")
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{path}: bad zip local header for {info.filename} at byte "
                              f"{info.header_offset}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _flatten_state_dict(obj, path, prefix=""):
    """Yields (key, _TensorRef) of a (possibly nested) state dict; other leaves are ignored."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten_state_dict(v, path, f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
    elif isinstance(obj, _TensorRef):
        yield prefix, obj


def load_torch(path):
    """Opens a torch.save file: an OrderedDict name -> LazyTensor in the file's order."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        return _load_torch_legacy(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not a readable torch zip archive ({e})") from None
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: expected one data.pkl in the archive, found "
                                  f"{len(pkl)}")
        top = pkl[0][: -len("data.pkl")]
        byteorder = top + "byteorder"
        if byteorder in names and zf.read(byteorder).strip() != b"little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        try:
            obj = _RestrictedUnpickler(zf.open(pkl[0]), path).load()
        except CheckpointError:
            raise
        except Exception as e:  # a corrupt pickle: say so, with the file
            raise CheckpointError(f"{path}: cannot unpickle data.pkl ({type(e).__name__}: "
                                  f"{e})") from None
        infos = {i.filename: i for i in zf.infolist()}
        with open(path, "rb") as f:
            offsets = {}
            for key, ref in _flatten_state_dict(obj, path):
                member = f"{top}data/{ref.storage.key}"
                if member not in infos:
                    raise CheckpointError(f"{path}: tensor {key}: storage {member} is missing")
                if member not in offsets:
                    offsets[member] = (_zip_member_offset(f, infos[member], path),
                                       infos[member].file_size)
    out = collections.OrderedDict()
    for key, ref in _flatten_state_dict(obj, path):
        member = f"{top}data/{ref.storage.key}"
        out[key] = _torch_lazy(path, key, ref, *offsets[member])
    if not out:
        raise CheckpointError(f"{path}: holds no tensors")
    return out


def _torch_lazy(path, key, ref, data_offset, member_size):
    dtype = ref.storage.dtype
    if dtype not in _NP_DTYPES:
        raise CheckpointError(f"{path}: tensor {key}: storage dtype {dtype} is not supported")
    item = _NP_DTYPES[dtype].itemsize
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise CheckpointError(f"{path}: tensor {key}: negative size, stride or offset")
    if len(ref.size) != len(ref.stride):
        raise CheckpointError(f"{path}: tensor {key}: {len(ref.size)} sizes but "
                              f"{len(ref.stride)} strides")
    numel = int(np.prod(ref.size, dtype=np.int64))
    # elements of the storage the view spans: offset .. offset + sum((size-1)*stride)
    span = 0 if numel == 0 else 1 + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if (ref.offset + span) * item > member_size:
        raise CheckpointError(f"{path}: tensor {key}: view [{ref.offset}, {ref.offset + span}) "
                              f"runs past its storage of {member_size // item} elements")

    def read():
        if numel == 0:
            return np.zeros(ref.size, _NP_DTYPES[dtype])
        fd = os.open(path, os.O_RDONLY)
        try:
            buf = _pread_exact(fd, span * item, data_offset + ref.offset * item, path,
                               f"tensor {key}")
        finally:
            os.close(fd)
        flat = np.frombuffer(buf, _NP_DTYPES[dtype])
        strides = tuple(s * item for s in ref.stride)
        return np.lib.stride_tricks.as_strided(flat, ref.size, strides, writeable=False)

    return LazyTensor(path, key, dtype, ref.size, read)


def _load_torch_legacy(path):
    try:
        import torch  # noqa: only for the pre-1.6 format
    except ImportError:
        raise CheckpointError(f"{path}: not a zip archive (torch < 1.6 format?); reading this "
                              f"format needs torch: pip install torch") from None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: torch.load failed ({e})") from None
    out = collections.OrderedDict()
    names = {torch.float16: "F16", torch.float32: "F32", torch.float64: "F64",
             torch.bfloat16: "BF16"}
    for key, t in sd.items():
        if not hasattr(t, "dtype") or t.dtype not in names:
            raise CheckpointError(f"{path}: entry {key} is not a floating-point tensor")
        arr = (t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16
               else t.numpy())
        out[key] = LazyTensor(path, key, names[t.dtype], tuple(t.shape), lambda a=arr: a)
    return out


# ---------------------------------------------------------------------------------------------
# safetensors

def load_safetensors(path):
    """Opens a .safetensors file: an OrderedDict name -> LazyTensor in data order."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{path}: shorter than a safetensors header")
            n = struct.unpack("<Q", head)[0]
            if n > size - 8 or n > 100 << 20:
                raise CheckpointError(f"{path}: header length {n} exceeds the file")
            header = json.loads(f.read(n))
    except OSError as e:
        raise CheckpointError(f"{path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: header is not JSON ({e})") from None
    base = 8 + n
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {key}: malformed header entry") from None
        if dtype not in _NP_DTYPES:
            raise CheckpointError(f"{path}: tensor {key}: dtype {dtype} is not supported")
        nbytes = int(np.prod(shape, dtype=np.int64)) * _NP_DTYPES[dtype].itemsize
        if end - begin != nbytes or begin < 0 or base + end > size:
            raise CheckpointError(f"{path}: tensor {key}: data_offsets [{begin}, {end}) do not "
                                  f"match shape {list(shape)} {dtype} or exceed the file")
        entries.append((begin, key, dtype, shape, nbytes))
    out = collections.OrderedDict()
    for begin, key, dtype, shape, nbytes in sorted(entries):
        def read(begin=begin, key=key, dtype=dtype, shape=shape, nbytes=nbytes):
            fd = os.open(path, os.O_RDONLY)
            try:
                buf = _pread_exact(fd, nbytes, base + begin, path, f"tensor {key}")
            finally:
                os.close(fd)
            return np.frombuffer(buf, _NP_DTYPES[dtype]).reshape(shape)
        out[key] = LazyTensor(path, key, dtype, shape, read)
    return out


# ---------------------------------------------------------------------------------------------
# SentencePiece tokenizer.model (protobuf)

def _varint(buf, i, path):
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise CheckpointError(f"{path}: truncated protobuf varint at byte {i}")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf, path):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i, path)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, path)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i, path)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise CheckpointError(f"{path}: unsupported protobuf wire type {wire} at byte {i}")
        if i > len(buf):
            raise CheckpointError(f"{path}: truncated protobuf field {field}")
        yield field, wire, value


def _signed32(v):
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def load_sentencepiece(path):
    """Parses tokenizer.model: dict(pieces, scores, types, unk_id, bos_id, eos_id, pad_id,
    model_type). Types use SentencePiece's enum, which is also GGUF's token_type:
    1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: {e.strerror}") from None
    pieces, scores, types = [], [], []
    spec = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1, "model_type": 1}
    for field, wire, value in _fields(buf, path):
        if field == 1 and wire == 2:  # repeated SentencePiece
            piece, score, ptype = None, 0.0, 1
            for f2, w2, v2 in _fields(value, path):
                if f2 == 1 and w2 == 2:
                    try:
                        piece = bytes(v2).decode("utf-8")
                    except UnicodeDecodeError:
                        raise CheckpointError(f"{path}: piece {len(pieces)} is not "
                                              f"UTF-8") from None
                elif f2 == 2 and w2 == 5:
                    score = struct.unpack("<f", v2)[0]
                elif f2 == 3 and w2 == 0:
                    ptype = v2
            if piece is None:
                raise CheckpointError(f"{path}: piece {len(pieces)} has no text")
            pieces.append(piece)
            scores.append(score)
            types.append(ptype)
        elif field == 2 and wire == 2:  # TrainerSpec
            for f2, w2, v2 in _fields(value, path):
                if w2 != 0:
                    continue
                name = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id",
                        43: "pad_id"}.get(f2)
                if name:
                    spec[name] = _signed32(v2)
    if not pieces:
        raise CheckpointError(f"{path}: not a SentencePiece model (no pieces)")
    for k in ("unk_id", "bos_id", "eos_id"):
        if not 0 <= spec[k] < len(pieces):
            raise CheckpointError(f"{path}: {k} {spec[k]} is outside the {len(pieces)} pieces")
    return dict(pieces=pieces, scores=scores, types=types, **spec)
