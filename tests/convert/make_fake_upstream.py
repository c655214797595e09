#!/usr/bin/env python3
"""make_fake_upstream.py — tiny fake upstream PandaGPT checkpoints for the converter's tests.

Writes, into OUTDIR, files in the exact layouts the real checkpoints ship in (spec §3, §4, §6;
../shared/reference/pandagpt-e2e/README.md), only tiny, with seeded random values:

  vicuna/          HF LlamaForCausalLM directory (fp16): config.json, generation_config.json,
                   special_tokens_map.json, tokenizer_config.json, added_tokens.json ([PAD]),
                   tokenizer.model (a SentencePiece ModelProto written by hand), and the weights as
                   pytorch_model-0000k-of-00002.bin + pytorch_model.bin.index.json (default),
                   one pytorch_model.bin, or model-0000k-of-00002.safetensors + index
                   (written by hand; without the rotary inv_freq buffers, which the
                   transformers versions that write safetensors no longer save)
  delta.pt         PandaGPT delta: OrderedDict of nn.Parameter (fp16), LoRA A/B of q,k,v,o per
                   layer then llama_proj, all views of ONE flat storage (DeepSpeed ZeRO style)
  imagebind.pth    imagebind_huge.pth key layout (fp32), tiny widths, real token counts
  weights.npz      every tensor above as float32 (the stored values, widened) under its key
  meta.json        sizes, piece count, LoRA rank/alpha, the options used

It must run under a Python with torch: the checkpoints are written by torch.save itself, so they
are byte for byte what upstream tools write. Broken variants for the error-path tests come from
--delta-drop/--delta-extra/--delta-bad-shape, --imagebind-drop/-extra/-bad-shape, --bad-mask.

  make_fake_upstream.py OUTDIR [options]
  make_fake_upstream.py --batch SPEC.json     SPEC: [[OUTDIR, option, ...], ...] — one torch
                                              import for many variants
"""
import argparse
import collections
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

# ---- sizes -------------------------------------------------------------------------------------

H, N_LAYER, N_HEAD, N_FF = 64, 2, 4, 172  # Vicuna: hidden, layers, heads, SwiGLU width
D_JOINT = 32                              # ImageBind joint dimension (1024 in imagebind_huge)
LORA_ALPHA = 32

# ImageBind towers: width E, blocks, heads (the geometry of ../shared/reference/imagebind-tiny);
# token counts and kernels are the real model's (spec §5.0, §6).
IMAGEBIND = collections.OrderedDict([
    ("vision",  dict(E=64, blocks=2, heads=4, tokens=257, bias_kv=False)),
    ("text",    dict(E=8,  blocks=2, heads=2, tokens=77,  bias_kv=False)),
    ("audio",   dict(E=48, blocks=2, heads=4, tokens=229, bias_kv=True)),
    ("depth",   dict(E=32, blocks=2, heads=4, tokens=197, bias_kv=True)),
    ("thermal", dict(E=40, blocks=2, heads=4, tokens=197, bias_kv=True)),
    ("imu",     dict(E=24, blocks=2, heads=2, tokens=251, bias_kv=True)),
])
TEXT_VOCAB = 49408
LOG_LOGIT_SCALE = {"audio": math.log(20.0), "depth": math.log(5.0), "thermal": math.log(10.0),
                   "imu": math.log(5.0)}


# ---- SentencePiece model (protobuf written by hand) --------------------------------------------

def pb_varint(n):
    if n < 0:
        n += 1 << 64  # int32/int64 negatives are 10-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_float(field, v):
    return pb_varint(field << 3 | 5) + struct.pack("<f", v)


NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def sentencepiece_pieces():
    """[(piece, score, type)]: <unk> <s> </s>, 256 byte pieces, then 200 normal pieces."""
    pieces = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    pieces += [("<0x%02X>" % b, 0.0, BYTE) for b in range(256)]
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    normal = ["\u2581"] + ["\u2581" + c for c in letters] + list(letters)
    bigrams = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or",
               "te", "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha",
               "as", "ou", "io", "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne",
               "ea", "ra", "ce"]
    normal += bigrams + ["\u2581" + b for b in bigrams]
    normal += ["\u2581the", "\u2581and", "ing", "ion", "\u2581of", "\u2581to", "ent", "\u2581in",
               "\u2581is", "\u2581a", "##", "###", ":", "\u2581Human", "\u2581Assistant", ".",
               ",", "<", ">", "/", "\u2581Img", "Img", "\u2581Describe", "\u2581this",
               "\u2581image", "\u2581\u4f60\u597d", "\u00e9", "\u2581caf\u00e9"]
    normal = list(dict.fromkeys(normal))  # drop repeats, keep the order
    normal += [p for p in ("\u2581" + a + b for a in "stcpm" for b in letters)
               if p not in normal][:200 - len(normal)]
    assert len(set(normal)) == 200
    pieces += [(p, -float(i), NORMAL) for i, p in enumerate(normal)]
    return pieces


def sentencepiece_model(pieces):
    out = bytearray()
    for piece, score, kind in pieces:
        msg = pb_bytes(1, piece) + pb_float(2, score)
        if kind != NORMAL:  # like real LLaMA files: NORMAL (the default) is not written
            msg += pb_int(3, kind)
        out += pb_bytes(1, msg)
    trainer = (pb_int(3, 2) + pb_int(4, len(pieces)) + pb_int(35, 1) + pb_int(40, 0)
               + pb_int(41, 1) + pb_int(42, 2) + pb_int(43, -1))  # BPE, byte_fallback, ids
    normalizer = pb_bytes(1, "identity") + pb_bytes(2, b"") + pb_int(3, 1) + pb_int(4, 0) \
        + pb_int(5, 1)  # add_dummy_prefix, no whitespace collapsing, escape whitespaces
    out += pb_bytes(2, trainer) + pb_bytes(3, normalizer)
    return bytes(out)


# ---- tensors -----------------------------------------------------------------------------------

class Draw:
    """Seeded float32 draws; every part of the fake checkpoint has its own stream."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape, std=1.0, mean=0.0):
        return (mean + std * self.rng.standard_normal(shape)).astype(np.float32)

    def linear(self, shape):
        return self.normal(shape, 1.0 / math.sqrt(shape[-1]))

    def norm(self, shape):
        return self.normal(shape, 0.1, 1.0)


def vicuna_state(n_vocab, seed):
    """HF LlamaForCausalLM state_dict (transformers 4.28 module order) as float32 arrays that are
    exactly representable in fp16."""
    d = Draw(seed)
    hd = H // N_HEAD
    sd = collections.OrderedDict()
    sd["model.embed_tokens.weight"] = d.normal((n_vocab, H))
    for i in range(N_LAYER):
        p = "model.layers.%d." % i
        for m in ("q", "k", "v", "o"):
            sd[p + "self_attn.%s_proj.weight" % m] = d.linear((H, H))
        inv = 1.0 / (10000.0 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
        sd[p + "self_attn.rotary_emb.inv_freq"] = inv.astype(np.float32)
        sd[p + "mlp.gate_proj.weight"] = d.linear((N_FF, H))
        sd[p + "mlp.down_proj.weight"] = d.linear((H, N_FF))
        sd[p + "mlp.up_proj.weight"] = d.linear((N_FF, H))
        sd[p + "input_layernorm.weight"] = d.norm((H,))
        sd[p + "post_attention_layernorm.weight"] = d.norm((H,))
    sd["model.norm.weight"] = d.norm((H,))
    sd["lm_head.weight"] = d.linear((n_vocab, H))
    return collections.OrderedDict((k, v.astype(np.float16).astype(np.float32))
                                   for k, v in sd.items())


def lora_key(i, m, ab, old_names):
    mid = "" if old_names else "default."
    return ("llama_model.base_model.model.model.layers.%d.self_attn.%s_proj.lora_%s.%sweight"
            % (i, m, ab, mid))


def delta_state(rank, zero_lora, old_names, seed):
    """PandaGPT's trainable parameters in module order (agent.save_model), fp16 values."""
    d = Draw(seed)
    sd = collections.OrderedDict()
    for i in range(N_LAYER):
        for m in ("q", "k", "v", "o"):
            a = d.normal((rank, H), 1.0 / math.sqrt(H))
            b = d.normal((H, rank), 0.05)  # clearly non-zero: a skipped merge shows
            sd[lora_key(i, m, "A", old_names)] = a
            sd[lora_key(i, m, "B", old_names)] = np.zeros_like(b) if zero_lora else b
    sd["llama_proj.weight"] = d.normal((H, D_JOINT), 1.0 / math.sqrt(D_JOINT))
    sd["llama_proj.bias"] = d.normal((H,), 0.5)
    return collections.OrderedDict((k, v.astype(np.float16).astype(np.float32))
                                   for k, v in sd.items())


def imagebind_state(seed):
    """imagebind_huge.pth keys (spec §6) in state_dict order, tiny widths, float32."""
    d = Draw(seed)
    sd = collections.OrderedDict()
    P, T, Hd, Po = ("modality_preprocessors.", "modality_trunks.", "modality_heads.",
                    "modality_postprocessors.")
    ib = IMAGEBIND
    # Preprocessors.
    E = ib["vision"]["E"]
    sd[P + "vision.cls_token"] = d.normal((1, 1, E), 0.02)
    sd[P + "vision.rgbt_stem.proj.1.weight"] = d.normal((E, 3, 2, 14, 14), 1 / math.sqrt(1176))
    sd[P + "vision.pos_embedding_helper.pos_embed"] = d.normal((1, 257, E), 0.02)
    E = ib["text"]["E"]
    sd[P + "text.pos_embed"] = d.normal((1, 77, E), 0.01)
    sd[P + "text.mask"] = np.triu(np.full((77, 77), -np.inf, np.float32), 1)
    sd[P + "text.token_embedding.weight"] = d.normal((TEXT_VOCAB, E), 0.02)
    for m, stem in (("audio", "rgbt_stem"), ("depth", "depth_stem"), ("thermal", "rgbt_stem")):
        E = ib[m]["E"]
        sd[P + m + ".cls_token"] = d.normal((1, 1, E), 0.02)
        sd[P + m + "." + stem + ".proj.weight"] = d.normal((E, 1, 16, 16), 1 / 16)
        sd[P + m + "." + stem + ".norm_layer.weight"] = d.norm((E,))
        sd[P + m + "." + stem + ".norm_layer.bias"] = d.normal((E,), 0.1)
        sd[P + m + ".pos_embedding_helper.pos_embed"] = d.normal((1, ib[m]["tokens"], E), 0.02)
    E = ib["imu"]["E"]
    sd[P + "imu.pos_embed"] = d.normal((1, 251, E), 0.02)
    sd[P + "imu.cls_token"] = d.normal((1, 1, E), 0.02)
    sd[P + "imu.imu_stem.proj.weight"] = d.linear((E, 48))
    sd[P + "imu.imu_stem.norm_layer.weight"] = d.norm((E,))
    sd[P + "imu.imu_stem.norm_layer.bias"] = d.normal((E,), 0.1)
    # Trunks.
    for m, c in ib.items():
        E = c["E"]
        if m == "vision":
            sd[T + "vision.pre_transformer_layer.0.weight"] = d.norm((E,))
            sd[T + "vision.pre_transformer_layer.0.bias"] = d.normal((E,), 0.1)
        for i in range(c["blocks"]):
            p = T + "%s.blocks.%d." % (m, i)
            sd[p + "attn.in_proj_weight"] = d.linear((3 * E, E))
            sd[p + "attn.in_proj_bias"] = d.normal((3 * E,), 0.1)
            if c["bias_kv"]:
                sd[p + "attn.bias_k"] = d.normal((1, 1, E), 0.1)
                sd[p + "attn.bias_v"] = d.normal((1, 1, E), 0.1)
            sd[p + "attn.out_proj.weight"] = d.linear((E, E))
            sd[p + "attn.out_proj.bias"] = d.normal((E,), 0.1)
            sd[p + "norm_1.weight"] = d.norm((E,))
            sd[p + "norm_1.bias"] = d.normal((E,), 0.1)
            sd[p + "mlp.fc1.weight"] = d.linear((4 * E, E))
            sd[p + "mlp.fc1.bias"] = d.normal((4 * E,), 0.1)
            sd[p + "mlp.fc2.weight"] = d.linear((E, 4 * E))
            sd[p + "mlp.fc2.bias"] = d.normal((E,), 0.1)
            sd[p + "norm_2.weight"] = d.norm((E,))
            sd[p + "norm_2.bias"] = d.normal((E,), 0.1)
    # Heads: LN, (CLS select), Linear without bias; IMU has a Dropout at index 2.
    for m, c in ib.items():
        E = c["E"]
        ln, lin = {"text": ("proj.0", "proj.1"), "imu": ("0", "3")}.get(m, ("0", "2"))
        sd[Hd + m + "." + ln + ".weight"] = d.norm((E,))
        sd[Hd + m + "." + ln + ".bias"] = d.normal((E,), 0.1)
        sd[Hd + m + "." + lin + ".weight"] = d.linear((D_JOINT, E))
    # Postprocessors: the learned text scale, then the four fixed buffers.
    sd[Po + "text.1.log_logit_scale"] = np.array(math.log(1 / 0.07) + 0.05, np.float32)
    for m in ("audio", "depth", "thermal", "imu"):
        sd[Po + m + ".1.log_logit_scale"] = np.array(LOG_LOGIT_SCALE[m], np.float32)
    return sd


# ---- writers -----------------------------------------------------------------------------------

def to_torch(a, dtype):
    return torch.from_numpy(np.array(a, order="C")).to(dtype).clone()


def write_safetensors(path, tensors):
    """safetensors by hand: u64 LE header length, JSON header, raw little-endian data."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in tensors.items():
        b = v.astype("<f2").tobytes()
        header[k] = {"dtype": "F16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the writer pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def write_vicuna(outdir, sd, n_pieces, pad, fmt, pieces):
    os.makedirs(outdir, exist_ok=True)
    n_vocab = n_pieces + (1 if pad else 0)
    config = {
        "_name_or_path": "vicuna-tiny", "architectures": ["LlamaForCausalLM"],
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": H,
        "initializer_range": 0.02, "intermediate_size": N_FF, "max_position_embeddings": 2048,
        "model_type": "llama", "num_attention_heads": N_HEAD, "num_hidden_layers": N_LAYER,
        "pad_token_id": 0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
        "torch_dtype": "float16", "transformers_version": "4.28.1", "use_cache": True,
        "vocab_size": n_vocab}
    dump = lambda name, obj: json.dump(obj, open(os.path.join(outdir, name), "w"), indent=2)
    dump("config.json", config)
    dump("generation_config.json", {"_from_model_config": True, "bos_token_id": 1,
                                    "eos_token_id": 2, "pad_token_id": 0,
                                    "transformers_version": "4.28.1"})
    dump("special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>",
                                     "unk_token": "<unk>",
                                     "pad_token": "[PAD]" if pad else "<unk>"})
    dump("tokenizer_config.json", {"add_bos_token": True, "add_eos_token": False,
                                   "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                   "clean_up_tokenization_spaces": False,
                                   "model_max_length": 2048, "sp_model_kwargs": {},
                                   "tokenizer_class": "LlamaTokenizer"})
    if pad:
        dump("added_tokens.json", {"[PAD]": n_pieces})
    with open(os.path.join(outdir, "tokenizer.model"), "wb") as f:
        f.write(sentencepiece_model(pieces))

    keys = list(sd)
    if fmt == "safetensors":  # newer transformers: inv_freq is not persistent, not saved
        keys = [k for k in keys if not k.endswith("rotary_emb.inv_freq")]
    first = [k for k in keys if k == "model.embed_tokens.weight" or k.startswith("model.layers.0.")]
    shards = [first, [k for k in keys if k not in first]]
    if fmt == "bin-single":
        torch.save(collections.OrderedDict((k, to_torch(sd[k], torch.float16)) for k in keys),
                   os.path.join(outdir, "pytorch_model.bin"))
        return
    stem, ext, index = (("model", "safetensors", "model.safetensors.index.json")
                        if fmt == "safetensors" else
                        ("pytorch_model", "bin", "pytorch_model.bin.index.json"))
    weight_map = collections.OrderedDict()
    for n, shard in enumerate(shards):
        name = "%s-%05d-of-%05d.%s" % (stem, n + 1, len(shards), ext)
        path = os.path.join(outdir, name)
        if fmt == "safetensors":
            write_safetensors(path, collections.OrderedDict((k, sd[k]) for k in shard))
        else:
            torch.save(collections.OrderedDict((k, to_torch(sd[k], torch.float16)) for k in shard),
                       path)
        for k in shard:
            weight_map[k] = name
    total = sum(sd[k].size * 2 for k in keys)
    dump(index, {"metadata": {"total_size": total}, "weight_map": weight_map})


def write_delta(path, sd, shared):
    """nn.Parameters as PandaGPT saves them; with `shared`, views of one flat fp16 storage at
    increasing storage offsets (DeepSpeed ZeRO keeps its fp16 parameters so)."""
    out = collections.OrderedDict()
    if shared:
        sizes = [v.size for v in sd.values()]
        flat = torch.zeros(sum(-(-n // 16) * 16 for n in sizes), dtype=torch.float16)
        off = 0
        for (k, v), n in zip(sd.items(), sizes):
            view = flat[off:off + n].view(*v.shape)
            view.copy_(torch.from_numpy(np.array(v, order="C")).to(torch.float16))
            out[k] = torch.nn.Parameter(view, requires_grad=True)
            off += -(-n // 16) * 16  # padded to 16 elements as ZeRO-2 does
    else:
        for k, v in sd.items():
            out[k] = torch.nn.Parameter(to_torch(v, torch.float16), requires_grad=True)
    torch.save(out, path)


def apply_mutations(sd, drop, extra, bad_shape, what):
    for k in drop:
        if k not in sd:
            sys.exit("make_fake_upstream: --%s-drop: no key %s" % (what, k))
        del sd[k]
    for k in bad_shape:
        if k not in sd:
            sys.exit("make_fake_upstream: --%s-bad-shape: no key %s" % (what, k))
        v = sd[k]
        sd[k] = (np.concatenate([v, v[:1]], 0) if v.ndim else np.stack([v, v])).astype(v.dtype)
    for k in extra:
        sd[k] = np.full((4, 4), 0.5, np.float32)


# ---- main --------------------------------------------------------------------------------------

def parse(argv):
    ap = argparse.ArgumentParser(prog="make_fake_upstream.py",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--format", choices=["bin-sharded", "bin-single", "safetensors"],
                    default="bin-sharded")
    ap.add_argument("--no-pad", action="store_true", help="vocab = pieces, no [PAD] row")
    ap.add_argument("--parts", default="vicuna,delta,imagebind",
                    help="comma list of what to write (default all)")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--old-names", action="store_true", help="peft <= 0.2 lora_A.weight keys")
    ap.add_argument("--zero-lora", action="store_true", help="lora_B = 0 (PandaGPT's init)")
    ap.add_argument("--no-shared-storage", action="store_true",
                    help="one storage per delta tensor")
    ap.add_argument("--seed", type=int, default=0)
    for what in ("delta", "imagebind"):
        ap.add_argument("--%s-drop" % what, action="append", default=[], metavar="KEY")
        ap.add_argument("--%s-extra" % what, action="append", default=[], metavar="KEY")
        ap.add_argument("--%s-bad-shape" % what, action="append", default=[], metavar="KEY",
                        help="one more row (a 0-d tensor becomes [2])")
    ap.add_argument("--bad-mask", action="store_true",
                    help="P.text.mask with one zero above the diagonal")
    return ap.parse_args(argv)


def run(argv):
    a = parse(argv)
    parts = set(a.parts.split(","))
    os.makedirs(a.outdir, exist_ok=True)
    pieces = sentencepiece_pieces()
    n_pieces = len(pieces)
    arrays = collections.OrderedDict()
    meta = {"hidden": H, "layers": N_LAYER, "heads": N_HEAD, "ff": N_FF, "rms_eps": 1e-6,
            "n_pieces": n_pieces, "n_vocab": n_pieces + (0 if a.no_pad else 1),
            "pad": not a.no_pad, "rank": a.rank, "alpha": LORA_ALPHA, "joint_dim": D_JOINT,
            "format": a.format, "parts": sorted(parts), "old_names": a.old_names,
            "zero_lora": a.zero_lora, "shared_storage": not a.no_shared_storage,
            "seed": a.seed, "pieces": [[p, s, t] for p, s, t in pieces],
            "imagebind": IMAGEBIND, "text_vocab": TEXT_VOCAB, "argv": argv}
    if "vicuna" in parts:
        sd = vicuna_state(meta["n_vocab"], a.seed)
        vdir = os.path.join(a.outdir, "vicuna")
        shutil.rmtree(vdir, ignore_errors=True)
        write_vicuna(vdir, sd, n_pieces, not a.no_pad, a.format, pieces)
        arrays.update(sd)
    if "delta" in parts:
        sd = delta_state(a.rank, a.zero_lora, a.old_names, a.seed + 1000)
        arrays.update(sd)
        apply_mutations(sd, a.delta_drop, a.delta_extra, a.delta_bad_shape, "delta")
        write_delta(os.path.join(a.outdir, "delta.pt"), sd, not a.no_shared_storage)
    if "imagebind" in parts:
        sd = imagebind_state(a.seed + 2000)
        arrays.update(sd)
        apply_mutations(sd, a.imagebind_drop, a.imagebind_extra, a.imagebind_bad_shape,
                        "imagebind")
        if a.bad_mask:
            sd["modality_preprocessors.text.mask"] = sd["modality_preprocessors.text.mask"].copy()
            sd["modality_preprocessors.text.mask"][3, 40] = 0.0
        torch.save(collections.OrderedDict((k, torch.from_numpy(np.array(v, order="C")))
                                           for k, v in sd.items()),
                   os.path.join(a.outdir, "imagebind.pth"))
    np.savez(os.path.join(a.outdir, "weights.npz"), **arrays)
    with open(os.path.join(a.outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        for argv in json.load(open(sys.argv[2])):
            run([str(x) for x in argv])
    else:
        run(sys.argv[1:])


if __name__ == "__main__":
    main()
