#!/usr/bin/env python3
"""convert-pandagpt.py — upstream PandaGPT checkpoints to the GGUF files libpandagpt loads.

Inputs are what PandaGPT users hold: a Vicuna v0 directory in Hugging Face format, PandaGPT's
delta `pytorch_model.pt` (LoRA + llama_proj) and `imagebind_huge.pth`. Outputs (docs/format.md):

  --llm-out       a llama.cpp `llama` GGUF: Vicuna with the LoRA merged (W + alpha/r * B@A, in
                  float32, before Q/K are permuted to GGUF's RoPE layout), tokenizer, template
  --lora-adapter  the LoRA as a llama.cpp adapter GGUF instead (then --llm-out is unmerged)
  --encoder-out   an `imagebind` GGUF: the encoders + llama_proj

Everything is validated before the first byte is written: a missing, extra or misshapen tensor
is an error naming it. Tensors are then streamed one at a time (read, merge, convert, write), so
a 13B conversion holds a few tensors in memory, never the model. Files are written to a
temporary name and renamed at the end: a failed run leaves no half-written output.
"""

import argparse
import json
import math
import os
import re
import resource
import sys
import time
from collections import OrderedDict

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("convert-pandagpt: error: the 'gguf' package is missing: "
             "pip install -r tools/requirements.txt")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint_reader import (CheckpointError, load_safetensors,  # noqa: E402
                               load_sentencepiece, load_torch)

Q = gguf.GGMLQuantizationType
OUTTYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}  # llama.cpp's llama_ftype

PANDAGPT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
    "{% if loop.first %}### Human: {% else %} Human: {% endif %}{{ m['content'] }}\n"
    "### Assistant:{% else %} {{ m['content'] }}\n###{% endif %}{% endfor %}")


class ConvertError(Exception):
    """An input that cannot be converted; the message names the file and the tensor."""


# ---------------------------------------------------------------------------------------------
# Encoding tensors for the output type

def tensor_type(shape, outtype, matrix):
    """The GGML type of a tensor: matrices take the output type, everything else stays F32;
    a matrix whose rows do not split into 32-element blocks falls back to F16."""
    if not matrix or outtype == "f32":
        return Q.F32
    qtype = OUTTYPES[outtype]
    if qtype in (Q.Q8_0, Q.Q4_0) and shape[-1] % 32 != 0:
        return Q.F16
    return qtype


def encode(arr, qtype):
    """float32 array -> the array GGUFWriter writes (float32, float16, or uint8 blocks)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if qtype == Q.F32:
        return arr
    if qtype == Q.F16:
        return arr.astype(np.float16)
    # BF16, Q8_0, Q4_0: ggml's reference encoders (gguf-py). They allocate several temporaries
    # of the input's size, so big matrices go through in slices of rows.
    rows = arr.reshape(-1, arr.shape[-1])
    out = np.empty(gguf.quants.quant_shape_to_byte_shape(rows.shape, qtype), np.uint8)
    step = max(1, (16 << 20) // (4 * rows.shape[1]))
    for r in range(0, rows.shape[0], step):
        out[r:r + step] = gguf.quants.quantize(rows[r:r + step], qtype)
    return out


def type_nbytes(shape, qtype):
    if qtype == Q.F32:
        return int(np.prod(shape)) * 4
    if qtype == Q.F16:
        return int(np.prod(shape)) * 2
    return int(np.prod(gguf.quants.quant_shape_to_byte_shape(shape, qtype)))


class Job:
    """One output tensor: its name, torch-order shape, type and how to compute its float32
    values (called once, at write time)."""

    def __init__(self, name, shape, qtype, produce):
        self.name, self.shape, self.qtype, self.produce = name, tuple(shape), qtype, produce


# ---------------------------------------------------------------------------------------------
# Progress and the GGUF writer

class Progress:
    """A progress bar on stderr (one line redrawn on a terminal, a line per 10% otherwise)."""

    def __init__(self, label, total_bytes, enabled):
        self.label, self.total, self.enabled = label, max(total_bytes, 1), enabled
        self.done, self.count, self.t0, self.last_decile = 0, 0, time.time(), 0
        self.tty = sys.stderr.isatty()

    def update(self, name, nbytes):
        self.done += nbytes
        self.count += 1
        if not self.enabled:
            return
        frac = self.done / self.total
        if self.tty:
            bar = "#" * int(30 * frac)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {name[:40]:<40}")
            sys.stderr.flush()
        elif int(10 * frac) > self.last_decile:
            self.last_decile = int(10 * frac)
            sys.stderr.write(f"{self.label}: {100 * frac:3.0f}% ({self.count} tensors, {name})\n")

    def finish(self, path):
        if self.enabled and self.tty:
            sys.stderr.write("\n")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sys.stderr.write(f"{self.label}: wrote {path}: {self.count} tensors, "
                         f"{self.done / 2**20:.1f} MiB of data in {time.time() - self.t0:.1f} s "
                         f"(peak RSS so far {rss:.0f} MiB)\n")


def write_gguf(path, arch, metadata, jobs, label, show_progress):
    """Writes metadata (list of (method name, args)) and jobs to path via a temporary file."""
    tmp = path + ".tmp"
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        for method, *args in metadata:
            getattr(writer, method)(*args)
        for job in jobs:
            writer.add_tensor_info(job.name, job.shape, np.dtype(np.float32),
                                   type_nbytes(job.shape, job.qtype), raw_dtype=job.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        progress = Progress(label, sum(type_nbytes(j.shape, j.qtype) for j in jobs),
                            show_progress)
        for job in jobs:
            data = encode(job.produce(), job.qtype)
            expect = type_nbytes(job.shape, job.qtype)
            if data.nbytes != expect:
                raise ConvertError(f"{job.name}: produced {data.nbytes} bytes, expected {expect}")
            writer.write_tensor_data(data)
            progress.update(job.name, data.nbytes)
        writer.close()
        os.replace(tmp, path)
        progress.finish(path)
    except OSError as e:
        raise ConvertError(f"{path}: cannot write ({e.strerror})") from None
    finally:
        if os.path.exists(tmp):
            writer.close()
            os.remove(tmp)


# ---------------------------------------------------------------------------------------------
# Vicuna (Hugging Face LlamaForCausalLM directory)

def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ConvertError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None


def open_shard(path):
    return load_safetensors(path) if path.endswith(".safetensors") else load_torch(path)


def vicuna_shards(d):
    """The weight files of an HF directory, in order, and the index's name -> file map."""
    for index_name in ("pytorch_model.bin.index.json", "model.safetensors.index.json"):
        index_path = os.path.join(d, index_name)
        if os.path.exists(index_path):
            weight_map = read_json(index_path).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ConvertError(f"{index_path}: no weight_map")
            files = sorted(set(weight_map.values()))
            for f in files:
                if not os.path.isfile(os.path.join(d, f)):
                    raise ConvertError(f"{index_path}: shard {f} is missing from {d}")
            return [os.path.join(d, f) for f in files], weight_map
    for single in ("pytorch_model.bin", "model.safetensors"):
        if os.path.isfile(os.path.join(d, single)):
            return [os.path.join(d, single)], None
    raise ConvertError(f"{d}: no pytorch_model.bin, model.safetensors or *.index.json")


class Vicuna:
    def __init__(self, d):
        if not os.path.isdir(d):
            raise ConvertError(f"--vicuna {d}: not a directory")
        self.dir = d
        cfg = read_json(os.path.join(d, "config.json"))
        self.config = cfg
        try:
            self.n_embd = int(cfg["hidden_size"])
            self.n_layer = int(cfg["num_hidden_layers"])
            self.n_head = int(cfg["num_attention_heads"])
            self.n_ff = int(cfg["intermediate_size"])
            self.n_ctx = int(cfg.get("max_position_embeddings", 2048))
            self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        except (KeyError, TypeError, ValueError) as e:
            raise ConvertError(f"{d}/config.json: missing or bad {e}") from None
        self.n_head_kv = int(cfg.get("num_key_value_heads", self.n_head))
        if cfg.get("model_type", "llama") != "llama":
            raise ConvertError(f"{d}/config.json: model_type {cfg.get('model_type')!r} is not "
                               f"'llama'")
        if self.n_embd % self.n_head or self.n_head % self.n_head_kv:
            raise ConvertError(f"{d}/config.json: hidden_size {self.n_embd}, heads {self.n_head}, "
                               f"kv heads {self.n_head_kv} do not divide")
        self.head_dim = self.n_embd // self.n_head

        self.tensors = OrderedDict()
        shards, weight_map = vicuna_shards(d)
        for shard in shards:
            for name, t in open_shard(shard).items():
                if name in self.tensors:
                    raise ConvertError(f"{shard}: tensor {name} also appears in "
                                       f"{self.tensors[name].path}")
                self.tensors[name] = t
        if weight_map:
            for name, f in weight_map.items():
                t = self.tensors.get(name)
                if t is None or os.path.basename(t.path) != f:
                    raise ConvertError(f"{d}: the index puts {name} in {f}, which does not "
                                       f"hold it")
        self._check_tensors()
        self._load_vocab()

    def expected(self):
        """HF name -> (shape, GGUF name, is a matrix)."""
        H, I, V = self.n_embd, self.n_ff, self.n_vocab
        kv = self.n_head_kv * self.head_dim
        e = OrderedDict()
        e["model.embed_tokens.weight"] = ((V, H), "token_embd.weight", True)
        for i in range(self.n_layer):
            p, b = f"model.layers.{i}.", f"blk.{i}."
            e[p + "self_attn.q_proj.weight"] = ((H, H), b + "attn_q.weight", True)
            e[p + "self_attn.k_proj.weight"] = ((kv, H), b + "attn_k.weight", True)
            e[p + "self_attn.v_proj.weight"] = ((kv, H), b + "attn_v.weight", True)
            e[p + "self_attn.o_proj.weight"] = ((H, H), b + "attn_output.weight", True)
            e[p + "mlp.gate_proj.weight"] = ((I, H), b + "ffn_gate.weight", True)
            e[p + "mlp.up_proj.weight"] = ((I, H), b + "ffn_up.weight", True)
            e[p + "mlp.down_proj.weight"] = ((H, I), b + "ffn_down.weight", True)
            e[p + "input_layernorm.weight"] = ((H,), b + "attn_norm.weight", False)
            e[p + "post_attention_layernorm.weight"] = ((H,), b + "ffn_norm.weight", False)
        e["model.norm.weight"] = ((H,), "output_norm.weight", False)
        if "lm_head.weight" in self.tensors or not self.config.get("tie_word_embeddings"):
            e["lm_head.weight"] = ((V, H), "output.weight", True)
        return e

    def _check_tensors(self):
        emb = self.tensors.get("model.embed_tokens.weight")
        if emb is None or len(emb.shape) != 2:
            raise ConvertError(f"{self.dir}: model.embed_tokens.weight is missing or not 2-D")
        self.n_vocab = emb.shape[0]
        expected = self.expected()
        problems = []
        for name, (shape, _, _) in expected.items():
            t = self.tensors.get(name)
            if t is None:
                problems.append(f"{name} is missing")
            elif t.shape != shape:
                problems.append(f"{name} has shape {list(t.shape)}, expected {list(shape)}")
            elif t.dtype not in ("F16", "F32", "BF16", "F64"):
                problems.append(f"{name} has dtype {t.dtype}")
        for name in self.tensors:
            if name not in expected and not name.endswith(".rotary_emb.inv_freq"):
                problems.append(f"{name} is not a LLaMA tensor")
        if problems:
            raise ConvertError(f"{self.dir}: " + "; ".join(problems[:8]) +
                               (f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""))

    def _load_vocab(self):
        sp_path = os.path.join(self.dir, "tokenizer.model")
        if not os.path.isfile(sp_path):
            raise ConvertError(f"{self.dir}: tokenizer.model is missing")
        try:
            sp = load_sentencepiece(sp_path)
        except CheckpointError as e:
            raise ConvertError(str(e)) from None
        tokens, scores, types = list(sp["pieces"]), list(sp["scores"]), list(sp["types"])
        n_sp = len(tokens)
        if self.n_vocab < n_sp:
            raise ConvertError(f"{self.dir}: the embedding has {self.n_vocab} rows but "
                               f"tokenizer.model has {n_sp} pieces")
        added = {}
        added_path = os.path.join(self.dir, "added_tokens.json")
        if os.path.isfile(added_path):
            for piece, idx in read_json(added_path).items():
                if not isinstance(idx, int) or not n_sp <= idx < self.n_vocab:
                    raise ConvertError(f"{added_path}: {piece!r} has id {idx}, outside the "
                                       f"added range [{n_sp}, {self.n_vocab})")
                added[idx] = piece
        for idx in range(n_sp, self.n_vocab):
            # FastChat's apply_delta adds "[PAD]" as row 32000 (spec §3.1); llama.cpp names
            # further unnamed rows [PAD<id>]
            piece = added.get(idx, "[PAD]" if self.n_vocab == n_sp + 1 else f"[PAD{idx}]")
            tokens.append(piece)
            scores.append(-1000.0)
            types.append(4)  # USER_DEFINED, as llama.cpp writes added tokens
        self.tokens, self.scores, self.types, self.sp = tokens, scores, types, sp


def permute_rows(w, n_head):
    """HF rotate-half row order -> GGUF adjacent pairs, per head (llama.cpp's permute)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


# ---------------------------------------------------------------------------------------------
# The PandaGPT delta (LoRA + llama_proj)

LORA_RE = re.compile(r"^(?:.*\.)?layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_([AB])"
                     r"(\.default)?\.weight$")


class Delta:
    def __init__(self, path, allow_extra):
        try:
            self.tensors = load_torch(path)
        except CheckpointError as e:
            raise ConvertError(str(e)) from None
        self.path = path
        self.lora = {}   # (layer, 'q'|'k'|'v'|'o', 'A'|'B') -> LazyTensor
        self.proj = {}   # 'weight' | 'bias' -> LazyTensor
        extra = []
        for name, t in self.tensors.items():
            m = LORA_RE.match(name)
            if m:
                key = (int(m.group(1)), m.group(2), m.group(3))
                if key in self.lora:
                    raise ConvertError(f"{path}: {name} duplicates {self.lora[key].name}")
                self.lora[key] = t
            elif name in ("llama_proj.weight", "llama_proj.bias"):
                self.proj[name.split(".")[1]] = t
            else:
                extra.append(name)
        if extra and not allow_extra:
            raise ConvertError(f"{path}: unexpected tensor(s) {', '.join(extra[:5])}"
                               f"{' ...' if len(extra) > 5 else ''} (not LoRA q/k/v/o or "
                               f"llama_proj; --allow-extra ignores them)")

    def check_lora(self, vicuna, rank):
        H, kv = vicuna.n_embd, vicuna.n_head_kv * vicuna.head_dim
        ranks = sorted({t.shape[0] for (_, _, ab), t in self.lora.items()
                        if ab == "A" and len(t.shape) == 2})
        if len(ranks) == 1 and ranks != [rank]:  # one consistent rank, not the expected one
            raise ConvertError(f"{self.path}: the LoRA has rank {ranks[0]} "
                               f"but --lora-r is {rank}")
        problems = []
        for i in range(vicuna.n_layer):
            for p in "qkvo":
                out = kv if p in "kv" else H
                for ab, shape in (("A", (rank, H)), ("B", (out, rank))):
                    t = self.lora.get((i, p, ab))
                    name = (f"llama_model.base_model.model.model.layers.{i}.self_attn.{p}_proj."
                            f"lora_{ab}.default.weight")
                    if t is None:
                        problems.append(f"{name} is missing")
                    elif t.shape != shape:
                        problems.append(f"{t.name} has shape {list(t.shape)}, expected "
                                        f"{list(shape)} (LoRA rank --lora-r {rank}, hidden {H})")
        for (i, p, ab), t in self.lora.items():
            if i >= vicuna.n_layer:
                problems.append(f"{t.name}: layer {i} does not exist (the model has "
                                f"{vicuna.n_layer})")
        if problems:
            raise ConvertError(f"{self.path}: " + "; ".join(problems[:6]) +
                               (f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""))

    def check_proj(self, n_embd=None, joint_dim=None):
        w, b = self.proj.get("weight"), self.proj.get("bias")
        if w is None or b is None:
            raise ConvertError(f"{self.path}: llama_proj.{'weight' if w is None else 'bias'} is "
                               f"missing")
        if len(w.shape) != 2 or b.shape != (w.shape[0],):
            raise ConvertError(f"{self.path}: llama_proj.weight {list(w.shape)} and "
                               f"llama_proj.bias {list(b.shape)} do not form a linear layer")
        if n_embd is not None and w.shape[0] != n_embd:
            raise ConvertError(f"{self.path}: llama_proj.weight has {w.shape[0]} rows but the "
                               f"LLM's hidden size is {n_embd}")
        if joint_dim is not None and w.shape[1] != joint_dim:
            raise ConvertError(f"{self.path}: llama_proj.weight takes {w.shape[1]} inputs but "
                               f"ImageBind's embedding size is {joint_dim}")


# ---------------------------------------------------------------------------------------------
# LLM GGUF

def llm_metadata(v, args, outtype, merged):
    md = [
        ("add_type", "model"),
        ("add_name", args.name or os.path.basename(os.path.normpath(v.dir))),
        ("add_uint32", "llama.context_length", v.n_ctx),
        ("add_uint32", "llama.embedding_length", v.n_embd),
        ("add_uint32", "llama.block_count", v.n_layer),
        ("add_uint32", "llama.feed_forward_length", v.n_ff),
        ("add_uint32", "llama.attention.head_count", v.n_head),
    ]
    if "num_key_value_heads" in v.config:
        md.append(("add_uint32", "llama.attention.head_count_kv", v.n_head_kv))
    md += [
        ("add_float32", "llama.attention.layer_norm_rms_epsilon", v.eps),
        ("add_uint32", "general.file_type", FILE_TYPES[outtype]),
        ("add_uint32", "llama.vocab_size", v.n_vocab),
        ("add_uint32", "llama.rope.dimension_count", v.head_dim),
    ]
    if "rope_theta" in v.config:
        md.append(("add_float32", "llama.rope.freq_base", float(v.config["rope_theta"])))
    md += [
        ("add_tokenizer_model", "llama"),
        ("add_tokenizer_pre", "default"),
        ("add_token_list", v.tokens),
        ("add_token_scores", v.scores),
        ("add_token_types", v.types),
        ("add_uint32", "tokenizer.ggml.bos_token_id", v.sp["bos_id"]),
        ("add_uint32", "tokenizer.ggml.eos_token_id", v.sp["eos_id"]),
        ("add_uint32", "tokenizer.ggml.unknown_token_id", v.sp["unk_id"]),
    ]
    pad = v.config.get("pad_token_id")
    if isinstance(pad, int) and 0 <= pad < v.n_vocab:
        md.append(("add_uint32", "tokenizer.ggml.padding_token_id", pad))
    md += [
        ("add_bool", "tokenizer.ggml.add_bos_token", True),
        ("add_bool", "tokenizer.ggml.add_eos_token", False),
        ("add_chat_template", PANDAGPT_CHAT_TEMPLATE),
        ("add_bool", "pandagpt.lora.merged", merged),
    ]
    if merged:
        md += [("add_uint32", "pandagpt.lora.rank", args.lora_r),
               ("add_float32", "pandagpt.lora.alpha", args.lora_alpha)]
    md.append(("add_quantization_version", gguf.GGML_QUANT_VERSION))
    return md


def llm_jobs(v, delta, args, outtype):
    """One job per HF tensor, in the checkpoint's order (as llama.cpp writes them)."""
    expected = v.expected()
    scale = np.float32(args.lora_alpha / args.lora_r)
    proj_re = re.compile(r"^model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight$")
    jobs = []
    for name, t in v.tensors.items():
        if name not in expected:
            continue  # rotary inv_freq buffers: RoPE is recomputed
        shape, gguf_name, matrix = expected[name]
        m = proj_re.match(name)
        layer, proj = (int(m.group(1)), m.group(2)) if m else (None, None)
        qtype = tensor_type(shape, outtype, matrix)
        if outtype == "q4_0" and gguf_name == "output.weight":
            qtype = Q.Q8_0  # the LM head is the most sensitive matrix (docs/format.md)

        def produce(t=t, layer=layer, proj=proj):
            w = t.float32()
            if delta is not None and proj is not None:
                a = delta.lora[(layer, proj, "A")].float32()
                b = delta.lora[(layer, proj, "B")].float32()
                w = w + scale * (b @ a)  # peft's merge, in float32 (spec §4.1)
            if proj == "q":
                w = permute_rows(w, v.n_head)
            elif proj == "k":
                w = permute_rows(w, v.n_head_kv)
            return w
        jobs.append(Job(gguf_name, shape, qtype, produce))
    return jobs


def adapter_jobs(v, delta, outtype):
    qtype = Q.F32 if outtype == "f32" else Q.F16
    names = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output"}
    jobs = []
    for i in range(v.n_layer):
        for p in "qkvo":
            a, b = delta.lora[(i, p, "A")], delta.lora[(i, p, "B")]
            base = f"blk.{i}.{names[p]}.weight"

            def prod_b(b=b, p=p):
                w = b.float32()
                # B's rows are W's output rows: they move with W's Q/K permutation
                if p == "q":
                    return permute_rows(w, v.n_head)
                if p == "k":
                    return permute_rows(w, v.n_head_kv)
                return w
            jobs.append(Job(base + ".lora_a", a.shape, qtype, a.float32))
            jobs.append(Job(base + ".lora_b", b.shape, qtype, prod_b))
    return jobs


# ---------------------------------------------------------------------------------------------
# ImageBind (spec §5, §6)

P, T, HD, PO = ("modality_preprocessors.", "modality_trunks.", "modality_heads.",
                "modality_postprocessors.")
ENCODERS = ("vision", "audio", "thermal", "depth", "imu")
# ImageBind-huge's fixed facts per modality: width, heads, tokens (incl. CLS), patch kernel shape
# after the width, and the stem name.
HUGE = {
    "vision": dict(width=1280, heads=16, tokens=257, kernel=(3, 2, 14, 14), stem="rgbt_stem"),
    "audio": dict(width=768, heads=12, tokens=229, kernel=(1, 16, 16), stem="rgbt_stem"),
    "thermal": dict(width=768, heads=12, tokens=197, kernel=(1, 16, 16), stem="rgbt_stem"),
    "depth": dict(width=384, heads=8, tokens=197, kernel=(1, 16, 16), stem="depth_stem"),
    "imu": dict(width=512, heads=8, tokens=251, kernel=(48,), stem="imu_stem"),
    "text": dict(width=1024, heads=16, tokens=77, kernel=None, stem=None),
}
TEXT_VOCAB = 49408


class ImageBind:
    def __init__(self, path, heads_override):
        try:
            self.tensors = load_torch(path)
        except CheckpointError as e:
            raise ConvertError(str(e)) from None
        self.path = path
        t = self.tensors
        self.width, self.blocks, self.heads = {}, {}, {}
        for m in ENCODERS:
            cls = t.get(f"{P}{m}.cls_token")
            if cls is None or len(cls.shape) != 3:
                raise ConvertError(f"{path}: {P}{m}.cls_token is missing or not [1,1,E]")
            self.width[m] = cls.shape[2]
        emb = t.get(f"{P}text.token_embedding.weight")
        if emb is None or len(emb.shape) != 2:
            raise ConvertError(f"{path}: {P}text.token_embedding.weight is missing or not 2-D")
        self.width["text"] = emb.shape[1]
        head = t.get(f"{HD}vision.2.weight")
        if head is None or len(head.shape) != 2:
            raise ConvertError(f"{path}: {HD}vision.2.weight is missing or not 2-D")
        self.dim = head.shape[0]
        for m in HUGE:
            idx = set()
            for name in t:
                g = re.match(rf"^{T}{m}\.blocks\.(\d+)\.", name)
                if g:
                    idx.add(int(g.group(1)))
            self.blocks[m] = max(idx) + 1 if idx else 0
            E = self.width[m]
            h = heads_override.get(m, HUGE[m]["heads"] if E == HUGE[m]["width"] else None)
            if h is None:
                raise ConvertError(f"{path}: the {m} encoder is {E} wide, not ImageBind-huge's "
                                   f"{HUGE[m]['width']}, and a checkpoint does not store head "
                                   f"counts: pass --imagebind-heads {m}=N,...")
            if h <= 0 or E % h:
                raise ConvertError(f"{path}: {m} width {E} is not divisible by {h} heads")
            self.heads[m] = h
        self._check()

    def expected(self):
        """Checkpoint key -> shape, exactly spec §6 for the widths found."""
        e, D = OrderedDict(), self.dim
        for m in HUGE:
            E, n, hg = self.width[m], self.blocks[m], HUGE[m]
            if m == "text":
                e[f"{P}text.token_embedding.weight"] = (TEXT_VOCAB, E)
                e[f"{P}text.pos_embed"] = (1, 77, E)
                e[f"{P}text.mask"] = (77, 77)
            else:
                e[f"{P}{m}.cls_token"] = (1, 1, E)
                stem = f"{P}{m}.{hg['stem']}."
                e[stem + ("proj.1.weight" if m == "vision" else "proj.weight")] = (E, *hg["kernel"])
                if m != "vision":
                    e[stem + "norm_layer.weight"] = (E,)
                    e[stem + "norm_layer.bias"] = (E,)
                pos = f"{P}imu.pos_embed" if m == "imu" else f"{P}{m}.pos_embedding_helper.pos_embed"
                e[pos] = (1, hg["tokens"], E)
            if m == "vision":
                e[f"{T}vision.pre_transformer_layer.0.weight"] = (E,)
                e[f"{T}vision.pre_transformer_layer.0.bias"] = (E,)
            for i in range(n):
                b = f"{T}{m}.blocks.{i}."
                e[b + "attn.in_proj_weight"] = (3 * E, E)
                e[b + "attn.in_proj_bias"] = (3 * E,)
                if m not in ("vision", "text"):
                    e[b + "attn.bias_k"] = (1, 1, E)
                    e[b + "attn.bias_v"] = (1, 1, E)
                e[b + "attn.out_proj.weight"] = (E, E)
                e[b + "attn.out_proj.bias"] = (E,)
                for ln in ("norm_1", "norm_2"):
                    e[b + f"{ln}.weight"] = (E,)
                    e[b + f"{ln}.bias"] = (E,)
                e[b + "mlp.fc1.weight"] = (4 * E, E)
                e[b + "mlp.fc1.bias"] = (4 * E,)
                e[b + "mlp.fc2.weight"] = (E, 4 * E)
                e[b + "mlp.fc2.bias"] = (E,)
            h = f"{HD}text.proj." if m == "text" else f"{HD}{m}."
            e[h + "0.weight"] = (E,)
            e[h + "0.bias"] = (E,)
            e[h + ("3.weight" if m == "imu" else "1.weight" if m == "text" else "2.weight")] = (D, E)
            if m != "vision":
                e[f"{PO}{m}.1.log_logit_scale"] = ()
        return e

    def _check(self):
        expected, problems = self.expected(), []
        for m in HUGE:
            if self.blocks[m] == 0:
                problems.append(f"{T}{m}.blocks.* are missing")
        for name, shape in expected.items():
            t = self.tensors.get(name)
            if t is None:
                problems.append(f"{name} is missing")
            elif t.shape != shape and not (shape == () and t.shape == (1,)):
                problems.append(f"{name} has shape {list(t.shape)}, expected {list(shape)}")
        for name in self.tensors:
            if name not in expected:
                problems.append(f"{name} is not an ImageBind-huge key")
        if problems:
            raise ConvertError(f"{self.path}: " + "; ".join(problems[:8]) +
                               (f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""))
        mask = self.tensors[f"{P}text.mask"].float32()
        causal = np.triu(np.full((77, 77), -np.inf, np.float32), 1)
        if not np.array_equal(mask, causal):
            raise ConvertError(f"{self.path}: {P}text.mask is not the causal mask (0 on and "
                               f"below the diagonal, -inf above)")
        self.log_scale = {}
        for m in HUGE:
            if m != "vision":
                v = float(self.tensors[f"{PO}{m}.1.log_logit_scale"].float32().reshape(-1)[0])
                if not math.isfinite(v):
                    raise ConvertError(f"{self.path}: {PO}{m}.1.log_logit_scale is {v}")
                self.log_scale[m] = v


def encoder_metadata(ib, delta, modalities, args, outtype):
    md = [("add_type", "model"),
          ("add_name", args.name or "ImageBind-huge + PandaGPT llama_proj"),
          ("add_uint32", "general.file_type", FILE_TYPES[outtype]),
          ("add_uint32", "imagebind.embedding_length", ib.dim),
          ("add_array", "imagebind.modalities", list(modalities))]
    for m in modalities:
        E, k = ib.width[m], f"imagebind.{m}."
        md += [("add_uint32", k + "embedding_length", E),
               ("add_uint32", k + "block_count", ib.blocks[m]),
               ("add_uint32", k + "attention.head_count", ib.heads[m]),
               ("add_uint32", k + "feed_forward_length", 4 * E),
               ("add_float32", k + "attention.layer_norm_epsilon", 1e-6),
               ("add_bool", k + "attention.bias_kv", m not in ("vision", "text")),
               ("add_uint32", k + "token_count", HUGE[m]["tokens"])]
        if m not in ("vision", "text"):
            md.append(("add_float32", k + "stem.layer_norm_epsilon", 1e-5))
        if m != "vision":
            md.append(("add_float32", k + "log_logit_scale", ib.log_scale[m]))
    if delta is not None:
        w = delta.proj["weight"]
        md += [("add_uint32", "imagebind.llama_proj.input_length", w.shape[1]),
               ("add_uint32", "imagebind.llama_proj.output_length", w.shape[0])]
    md.append(("add_quantization_version", gguf.GGML_QUANT_VERSION))
    return md


def encoder_jobs(ib, delta, modalities, outtype):
    jobs = []

    def add(gguf_name, src, shape, matrix):
        t = src if not isinstance(src, str) else ib.tensors[src]
        jobs.append(Job(gguf_name, shape, tensor_type(shape, outtype, matrix),
                        lambda t=t, shape=shape: t.float32().reshape(shape)))

    for m in modalities:
        E, n = ib.width[m], ib.blocks[m]
        if m == "text":
            add("text.token_embed.weight", f"{P}text.token_embedding.weight", (TEXT_VOCAB, E),
                True)
            add("text.pos_embed", f"{P}text.pos_embed", (77, E), False)
        else:
            stem = f"{P}{m}.{HUGE[m]['stem']}."
            kernel = int(np.prod(HUGE[m]["kernel"]))
            add(f"{m}.cls_token", f"{P}{m}.cls_token", (E,), False)
            add(f"{m}.patch_embed.weight",
                stem + ("proj.1.weight" if m == "vision" else "proj.weight"), (E, kernel), True)
            if m != "vision":
                add(f"{m}.stem_norm.weight", stem + "norm_layer.weight", (E,), False)
                add(f"{m}.stem_norm.bias", stem + "norm_layer.bias", (E,), False)
            pos = f"{P}imu.pos_embed" if m == "imu" else f"{P}{m}.pos_embedding_helper.pos_embed"
            add(f"{m}.pos_embed", pos, (HUGE[m]["tokens"], E), False)
        if m == "vision":
            add("vision.pre_norm.weight", f"{T}vision.pre_transformer_layer.0.weight", (E,), False)
            add("vision.pre_norm.bias", f"{T}vision.pre_transformer_layer.0.bias", (E,), False)
        for i in range(n):
            s, d = f"{T}{m}.blocks.{i}.", f"{m}.blk.{i}."
            add(d + "norm_1.weight", s + "norm_1.weight", (E,), False)
            add(d + "norm_1.bias", s + "norm_1.bias", (E,), False)
            add(d + "attn.in_proj.weight", s + "attn.in_proj_weight", (3 * E, E), True)
            add(d + "attn.in_proj.bias", s + "attn.in_proj_bias", (3 * E,), False)
            if m not in ("vision", "text"):
                add(d + "attn.bias_k", s + "attn.bias_k", (E,), False)
                add(d + "attn.bias_v", s + "attn.bias_v", (E,), False)
            add(d + "attn.out_proj.weight", s + "attn.out_proj.weight", (E, E), True)
            add(d + "attn.out_proj.bias", s + "attn.out_proj.bias", (E,), False)
            add(d + "norm_2.weight", s + "norm_2.weight", (E,), False)
            add(d + "norm_2.bias", s + "norm_2.bias", (E,), False)
            add(d + "mlp.fc1.weight", s + "mlp.fc1.weight", (4 * E, E), True)
            add(d + "mlp.fc1.bias", s + "mlp.fc1.bias", (4 * E,), False)
            add(d + "mlp.fc2.weight", s + "mlp.fc2.weight", (E, 4 * E), True)
            add(d + "mlp.fc2.bias", s + "mlp.fc2.bias", (E,), False)
        h = f"{HD}text.proj." if m == "text" else f"{HD}{m}."
        add(f"{m}.head_norm.weight", h + "0.weight", (E,), False)
        add(f"{m}.head_norm.bias", h + "0.bias", (E,), False)
        add(f"{m}.head.weight",
            h + ("3.weight" if m == "imu" else "1.weight" if m == "text" else "2.weight"),
            (ib.dim, E), True)
    if delta is not None:
        w, b = delta.proj["weight"], delta.proj["bias"]
        add("llama_proj.weight", w, w.shape, True)
        add("llama_proj.bias", b, b.shape, False)
    return jobs


# ---------------------------------------------------------------------------------------------
# Command line

def parse_heads(text):
    heads = {}
    for item in filter(None, (text or "").split(",")):
        m, _, n = item.partition("=")
        if m not in HUGE or not n.isdigit():
            raise argparse.ArgumentTypeError(f"bad --imagebind-heads item {item!r} (expected "
                                             f"modality=N with modality in {', '.join(HUGE)})")
        heads[m] = int(n)
    return heads


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="convert-pandagpt",
        description="Convert Vicuna + the PandaGPT delta + ImageBind-huge to libpandagpt's GGUF "
                    "files (docs/convert.md, docs/format.md).")
    src = ap.add_argument_group("inputs (each needed only by the outputs that use it)")
    src.add_argument("--vicuna", metavar="DIR", help="Vicuna v0 Hugging Face directory")
    src.add_argument("--delta", metavar="FILE", help="PandaGPT delta pytorch_model.pt")
    src.add_argument("--imagebind", metavar="FILE", help="imagebind_huge.pth")
    out = ap.add_argument_group("outputs")
    out.add_argument("--llm-out", metavar="PATH", help="LLM GGUF (LoRA merged unless "
                     "--no-lora or --lora-adapter)")
    out.add_argument("--encoder-out", metavar="PATH", help="ImageBind + llama_proj GGUF")
    out.add_argument("--lora-adapter", metavar="PATH", help="write the LoRA as a llama.cpp "
                     "adapter GGUF instead of merging it")
    opt = ap.add_argument_group("options")
    opt.add_argument("--outtype", choices=OUTTYPES, default="f16",
                     help="tensor type of the matrices of every output (default f16)")
    opt.add_argument("--llm-outtype", choices=OUTTYPES, help="override --outtype for the LLM")
    opt.add_argument("--encoder-outtype", choices=OUTTYPES,
                     help="override --outtype for the encoders")
    opt.add_argument("--no-lora", action="store_true", help="plain Vicuna: no LoRA at all")
    opt.add_argument("--lora-r", type=int, default=32, help="LoRA rank (PandaGPT: 32)")
    opt.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha (PandaGPT: 32)")
    opt.add_argument("--allow-extra", action="store_true",
                     help="ignore delta tensors that are neither LoRA q/k/v/o nor llama_proj")
    opt.add_argument("--with-text", action="store_true",
                     help="also write ImageBind's text tower (PandaGPT never uses it)")
    opt.add_argument("--imagebind-heads", type=parse_heads, default={}, metavar="M=N,...",
                     help="head counts for a checkpoint that is not ImageBind-huge")
    opt.add_argument("--name", help="general.name of the outputs")
    opt.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)

    if not (a.llm_out or a.encoder_out or a.lora_adapter):
        ap.error("nothing to do: give --llm-out, --encoder-out and/or --lora-adapter")
    if (a.llm_out or a.lora_adapter) and not a.vicuna:
        ap.error("--llm-out and --lora-adapter need --vicuna")
    if a.llm_out and not (a.delta or a.no_lora or a.lora_adapter):
        ap.error("--llm-out needs --delta (the PandaGPT LoRA), or --no-lora for plain Vicuna")
    if a.lora_adapter and not a.delta:
        ap.error("--lora-adapter needs --delta")
    if a.lora_adapter and a.no_lora:
        ap.error("--lora-adapter and --no-lora contradict each other")
    if a.encoder_out and not a.imagebind:
        ap.error("--encoder-out needs --imagebind")
    if a.lora_r <= 0 or not a.lora_alpha > 0:
        ap.error("--lora-r and --lora-alpha must be positive")
    outs = [p for p in (a.llm_out, a.encoder_out, a.lora_adapter) if p]
    if len({os.path.abspath(p) for p in outs}) != len(outs):
        ap.error("two outputs have the same path")
    return a


def convert(a):
    llm_type = a.llm_outtype or a.outtype
    enc_type = a.encoder_outtype or a.outtype
    want_lora = bool(a.llm_out and not a.no_lora and not a.lora_adapter)

    # read and validate every input before writing anything
    vicuna = Vicuna(a.vicuna) if (a.llm_out or a.lora_adapter) else None
    delta = Delta(a.delta, a.allow_extra) if a.delta and (want_lora or a.lora_adapter or
                                                           a.encoder_out) else None
    if delta is not None and (want_lora or a.lora_adapter):
        delta.check_lora(vicuna, a.lora_r)
    ib = ImageBind(a.imagebind, a.imagebind_heads) if a.encoder_out else None
    if ib is not None and delta is not None:
        delta.check_proj(n_embd=vicuna.n_embd if vicuna else None, joint_dim=ib.dim)

    show = not a.quiet
    if a.llm_out:
        write_gguf(a.llm_out, "llama", llm_metadata(vicuna, a, llm_type, want_lora),
                   llm_jobs(vicuna, delta if want_lora else None, a, llm_type), "llm", show)
    if a.lora_adapter:
        md = [("add_type", "adapter"), ("add_name", a.name or "PandaGPT LoRA"),
              ("add_string", "adapter.type", "lora"),
              ("add_float32", "adapter.lora.alpha", a.lora_alpha)]
        write_gguf(a.lora_adapter, "llama", md, adapter_jobs(vicuna, delta, llm_type),
                   "lora-adapter", show)
    if a.encoder_out:
        modalities = ENCODERS + (("text",) if a.with_text else ())
        write_gguf(a.encoder_out, "imagebind",
                   encoder_metadata(ib, delta, modalities, a, enc_type),
                   encoder_jobs(ib, delta, modalities, enc_type), "encoder", show)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        convert(a)
    except (ConvertError, CheckpointError) as e:
        sys.stderr.write(f"convert-pandagpt: error: {e}\n")
        return 1
    except MemoryError:
        sys.stderr.write("convert-pandagpt: error: out of memory\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
