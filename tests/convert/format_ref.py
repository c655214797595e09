"""format_ref.py — docs/format.md written out for the converter's test, independently of the
converter: what each GGUF must hold (names, shapes, types, metadata), ggml's roundings and
quantizers re-implemented in NumPy, and a small GGUF reader on top of gguf-py.

`meta` is make_fake_upstream.py's meta.json (sizes of the fake model).
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

OUTTYPES = {  # --outtype: (matrix type, general.file_type = llama.cpp's ftype)
    "f32": (QT.F32, 0), "f16": (QT.F16, 1), "bf16": (QT.BF16, 32),
    "q8_0": (QT.Q8_0, 7), "q4_0": (QT.Q4_0, 2)}
PAD_SCORE = -1000.0


# ---- reading -----------------------------------------------------------------------------------

class Gguf:
    """A GGUF file through gguf.GGUFReader: metadata values and tensors in torch order."""

    def __init__(self, path):
        self.path = path
        r = gguf.GGUFReader(path)
        self.fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
        self.tensors = {t.name: t for t in r.tensors}

    def value(self, key):
        f = self.fields.get(key)
        return None if f is None else f.contents()

    def vtype(self, key):
        return tuple(self.fields[key].types)

    def shape(self, name):  # torch order: GGUF's ne reversed
        return tuple(int(n) for n in reversed(self.tensors[name].shape))

    def ttype(self, name):
        return QT(int(self.tensors[name].tensor_type))

    def raw(self, name):
        return np.asarray(self.tensors[name].data).tobytes()

    def f32(self, name):
        """Values as float32 (dequantized by gguf-py where quantized)."""
        data = np.asarray(self.tensors[name].data)
        if self.ttype(name) in (QT.F32, QT.F16):
            a = data.astype(np.float32)
        else:
            a = gguf.quants.dequantize(data, self.ttype(name)).astype(np.float32)
        return a.reshape(self.shape(name))


# ---- ggml's roundings and quantizers, re-implemented -------------------------------------------

def roundf(x):
    """C roundf (half away from zero) of float32 values, exactly (float64 holds x ± 0.5)."""
    x = x.astype(np.float64)
    return np.where(x >= 0, np.floor(x + 0.5), -np.floor(-x + 0.5))


def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (ggml_compute_fp32_to_bf16)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def q8_0_bytes(x):
    """ggml quantize_row_q8_0_ref: per 32 values d = amax/127 (stored fp16), q = roundf(x/d);
    a block is d then the 32 int8."""
    b = x.astype(np.float32).reshape(-1, 32)
    d = (np.abs(b).max(axis=1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = roundf(b * inv[:, None]).astype(np.int8)
    return np.concatenate([d.astype("<f2").view(np.uint8).reshape(-1, 2), q.view(np.uint8)],
                          axis=1).tobytes()


def q4_0_bytes(x):
    """ggml quantize_row_q4_0_ref: d = (the signed value of largest |x|)/-8 (fp16), q =
    min(15, (int8)(x/d + 8.5f)); element j in the low nibble of byte j, element j+16 in the
    high nibble."""
    b = x.astype(np.float32).reshape(-1, 32)
    mx = b[np.arange(len(b)), np.abs(b).argmax(axis=1)]  # the first of equal maxima, as `<`
    d = (mx / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    t = (b * inv[:, None]).astype(np.float32) + np.float32(8.5)  # float32 sum, as in C
    q = np.minimum(15, np.trunc(t.astype(np.float64))).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([d.astype("<f2").view(np.uint8).reshape(-1, 2), qs], axis=1).tobytes()


def encode(x, qtype):
    """The bytes a GGUF tensor of type qtype holds for the float32 values x."""
    if qtype == QT.F32:
        return x.astype("<f4").tobytes()
    if qtype == QT.F16:
        return x.astype("<f2").tobytes()
    if qtype == QT.BF16:
        return bf16_bits(x).tobytes()
    if qtype == QT.Q8_0:
        return q8_0_bytes(x)
    if qtype == QT.Q4_0:
        return q4_0_bytes(x)
    raise ValueError(qtype)


def quant_bound(ref, qtype):
    """Per-element bound of |dequantized - ref| per 32-block: Q8_0 d/2 plus 127 times the fp16
    rounding of d; Q4_0 |d| (the clamped end, +8 -> 7) plus 8 fp16 roundings of d."""
    amax = np.abs(ref.astype(np.float64)).reshape(-1, 32).max(axis=1, keepdims=True)
    if qtype == QT.Q8_0:
        bound = amax / 127.0 * (0.5 + 127 * 2.0 ** -11)
    else:
        bound = amax / 8.0 * (1.0 + 8 * 2.0 ** -11)
    return np.broadcast_to(bound * 1.0001 + 1e-12, (len(amax), 32)).reshape(ref.shape)


def expected_type(shape, outtype, is_matrix, lm_head=False):
    """docs/format.md "Tensor types": matrices take the outtype (q4_0's LM head Q8_0), a matrix
    whose rows are not whole 32-blocks F16, everything else F32."""
    if not is_matrix:
        return QT.F32
    qt = QT.Q8_0 if outtype == "q4_0" and lm_head else OUTTYPES[outtype][0]
    if qt in (QT.Q8_0, QT.Q4_0) and shape[-1] % 32:
        return QT.F16
    return qt


# ---- the LLM (docs/format.md §1) ---------------------------------------------------------------

LLM_BLOCK = [  # GGUF suffix, HF suffix, Q/K rows permuted
    ("attn_norm.weight", "input_layernorm.weight", False),
    ("attn_q.weight", "self_attn.q_proj.weight", True),
    ("attn_k.weight", "self_attn.k_proj.weight", True),
    ("attn_v.weight", "self_attn.v_proj.weight", False),
    ("attn_output.weight", "self_attn.o_proj.weight", False),
    ("ffn_norm.weight", "post_attention_layernorm.weight", False),
    ("ffn_gate.weight", "mlp.gate_proj.weight", False),
    ("ffn_up.weight", "mlp.up_proj.weight", False),
    ("ffn_down.weight", "mlp.down_proj.weight", False),
]


def permute_qk(w, n_head):
    """HF rotate-half rows -> GGUF adjacent pairs, per head."""
    out_dim, in_dim = w.shape
    return w.reshape(n_head, 2, out_dim // n_head // 2, in_dim).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w, n_head):
    """The inverse of permute_qk."""
    out_dim, in_dim = w.shape
    return w.reshape(n_head, out_dim // n_head // 2, 2, in_dim).swapaxes(1, 2).reshape(w.shape)


def hf_keys(z):
    """The Vicuna tensors of a weights.npz."""
    return {k: z[k] for k in z.files if k.startswith(("model.", "lm_head."))}


def llm_expected(w, meta):
    """{GGUF name: (float64 array, LoRA-merged)} from HF weights w."""
    exp = {"token_embd.weight": (w["model.embed_tokens.weight"], False),
           "output_norm.weight": (w["model.norm.weight"], False),
           "output.weight": (w["lm_head.weight"], False)}
    for i in range(meta["layers"]):
        for g, h, perm in LLM_BLOCK:
            v = w["model.layers.%d.%s" % (i, h)]
            exp["blk.%d.%s" % (i, g)] = (permute_qk(v, meta["heads"]) if perm else v,
                                         "self_attn" in h)
    return exp


def hf_weights_of(g, meta):
    """The HF-layout float64 weights a GGUF LLM holds (dequantized), for hf_forward."""
    w = {"model.embed_tokens.weight": g.f32("token_embd.weight"),
         "model.norm.weight": g.f32("output_norm.weight"),
         "lm_head.weight": g.f32("output.weight")}
    for i in range(meta["layers"]):
        for gn, h, perm in LLM_BLOCK:
            v = g.f32("blk.%d.%s" % (i, gn))
            w["model.layers.%d.%s" % (i, h)] = unpermute_qk(v, meta["heads"]) if perm else v
    return {k: v.astype(np.float64) for k, v in w.items()}


def llm_shapes(meta, vocab):
    H, F = meta["hidden"], meta["ff"]
    s = {"token_embd.weight": (vocab, H), "output_norm.weight": (H,), "output.weight": (vocab, H)}
    per_layer = {"ffn_gate.weight": (F, H), "ffn_up.weight": (F, H), "ffn_down.weight": (H, F),
                 "attn_norm.weight": (H,), "ffn_norm.weight": (H,)}
    for i in range(meta["layers"]):
        for g, _, _ in LLM_BLOCK:
            s["blk.%d.%s" % (i, g)] = per_layer.get(g, (H, H))
    return s


def llm_types(meta, vocab, outtype):
    return {n: expected_type(s, outtype, len(s) == 2, n == "output.weight")
            for n, s in llm_shapes(meta, vocab).items()}


def llm_metadata(meta, vocab, pad, ftype, name, merged, template, rank=32):
    """[(key, value type, value)]; value None = the key must be absent."""
    pieces = meta["pieces"]
    toks = [p[0] for p in pieces] + (["[PAD]"] if pad else [])
    scores = [float(p[1]) for p in pieces] + ([PAD_SCORE] if pad else [])
    types = [p[2] for p in pieces] + ([4] if pad else [])  # [PAD]: user-defined
    t = [("general.architecture", VT.STRING, "llama"), ("general.type", VT.STRING, "model"),
         ("general.name", VT.STRING, name), ("general.file_type", VT.UINT32, ftype),
         ("general.quantization_version", VT.UINT32, 2),
         ("llama.context_length", VT.UINT32, 2048),
         ("llama.embedding_length", VT.UINT32, meta["hidden"]),
         ("llama.block_count", VT.UINT32, meta["layers"]),
         ("llama.feed_forward_length", VT.UINT32, meta["ff"]),
         ("llama.attention.head_count", VT.UINT32, meta["heads"]),
         ("llama.attention.head_count_kv", VT.UINT32, None),  # config.json has none
         ("llama.attention.layer_norm_rms_epsilon", VT.FLOAT32,
          float(np.float32(meta["rms_eps"]))),
         ("llama.rope.dimension_count", VT.UINT32, meta["hidden"] // meta["heads"]),
         ("llama.rope.freq_base", VT.FLOAT32, None),  # no rope_theta: LLaMA-1
         ("llama.vocab_size", VT.UINT32, vocab),
         ("tokenizer.ggml.model", VT.STRING, "llama"),
         ("tokenizer.ggml.pre", VT.STRING, "default"),
         ("tokenizer.ggml.tokens", (VT.ARRAY, VT.STRING), toks),
         ("tokenizer.ggml.scores", (VT.ARRAY, VT.FLOAT32), scores),
         ("tokenizer.ggml.token_type", (VT.ARRAY, VT.INT32), types),
         ("tokenizer.ggml.bos_token_id", VT.UINT32, 1),
         ("tokenizer.ggml.eos_token_id", VT.UINT32, 2),
         ("tokenizer.ggml.unknown_token_id", VT.UINT32, 0),
         ("tokenizer.ggml.padding_token_id", VT.UINT32, 0),
         ("tokenizer.ggml.add_bos_token", VT.BOOL, True),
         ("tokenizer.ggml.add_eos_token", VT.BOOL, False),
         ("tokenizer.chat_template", VT.STRING, template)]
    if merged:
        t += [("pandagpt.lora.merged", VT.BOOL, True), ("pandagpt.lora.rank", VT.UINT32, rank),
              ("pandagpt.lora.alpha", VT.FLOAT32, float(meta["alpha"]))]
    return t


def chat_template(source_root):
    """The template as docs/format.md §1 shows it (its indented block)."""
    path = os.path.join(source_root, "docs", "format.md")
    lines = open(path, encoding="utf-8").read().split("\n")
    i = next(i for i, l in enumerate(lines) if l.startswith("`tokenizer.chat_template` (Jinja"))
    while not lines[i].startswith("    "):
        i += 1
    block = []
    while i < len(lines) and lines[i].startswith("    "):
        block.append(lines[i][4:])
        i += 1
    return "\n".join(block)


# ---- the encoders (docs/format.md §3) ----------------------------------------------------------

P, T, HD = "modality_preprocessors.", "modality_trunks.", "modality_heads."
ENCODER_ORDER = ["vision", "audio", "thermal", "depth", "imu"]  # then text with --with-text
ENCODER_MATRICES = ("patch_embed.weight", "in_proj.weight", "out_proj.weight", "fc1.weight",
                    "fc2.weight", "head.weight", "token_embed.weight", "llama_proj.weight")
STEM_LN = ("audio", "thermal", "depth", "imu")


def encoder_expected(src, meta, with_text, with_proj):
    """{GGUF name: (float32 array in the documented shape, is_matrix)} from the source tensors
    (ImageBind keys and, with with_proj, the delta's llama_proj)."""
    ib = meta["imagebind"]
    e = {}

    def put(name, key, shape=None):
        v = src[key]
        e[name] = (v.reshape(shape) if shape else v, name.endswith(ENCODER_MATRICES))

    for m in ENCODER_ORDER + (["text"] if with_text else []):
        E = ib[m]["E"]
        stem = {"vision": "rgbt_stem.proj.1", "depth": "depth_stem.proj",
                "imu": "imu_stem.proj"}.get(m, "rgbt_stem.proj")
        if m == "text":
            put("text.token_embed.weight", P + "text.token_embedding.weight")
            put("text.pos_embed", P + "text.pos_embed", (77, E))
        else:
            put(m + ".cls_token", P + m + ".cls_token", (E,))
            # Conv weights flattened per output channel in (c, t, kh, kw) order.
            put(m + ".patch_embed.weight", P + "%s.%s.weight" % (m, stem), (E, -1))
            pos = P + ("imu.pos_embed" if m == "imu" else m + ".pos_embedding_helper.pos_embed")
            put(m + ".pos_embed", pos, (ib[m]["tokens"], E))
        if m == "vision":
            put("vision.pre_norm.weight", T + "vision.pre_transformer_layer.0.weight")
            put("vision.pre_norm.bias", T + "vision.pre_transformer_layer.0.bias")
        elif m in STEM_LN:
            norm = stem.rsplit(".", 1)[0] + ".norm_layer"
            put(m + ".stem_norm.weight", P + "%s.%s.weight" % (m, norm))
            put(m + ".stem_norm.bias", P + "%s.%s.bias" % (m, norm))
        for i in range(ib[m]["blocks"]):
            g, t = "%s.blk.%d." % (m, i), T + "%s.blocks.%d." % (m, i)
            for part in ("norm_1", "norm_2", "mlp.fc1", "mlp.fc2", "attn.out_proj"):
                put(g + part + ".weight", t + part + ".weight")
                put(g + part + ".bias", t + part + ".bias")
            put(g + "attn.in_proj.weight", t + "attn.in_proj_weight")
            put(g + "attn.in_proj.bias", t + "attn.in_proj_bias")
            if ib[m]["bias_kv"]:
                put(g + "attn.bias_k", t + "attn.bias_k", (E,))
                put(g + "attn.bias_v", t + "attn.bias_v", (E,))
        ln, lin = {"text": ("proj.0", "proj.1"), "imu": ("0", "3")}.get(m, ("0", "2"))
        put(m + ".head_norm.weight", HD + "%s.%s.weight" % (m, ln))
        put(m + ".head_norm.bias", HD + "%s.%s.bias" % (m, ln))
        put(m + ".head.weight", HD + "%s.%s.weight" % (m, lin))
    if with_proj:
        put("llama_proj.weight", "llama_proj.weight")
        put("llama_proj.bias", "llama_proj.bias")
    return e


def encoder_types(exp, outtype):
    return {n: expected_type(v.shape, outtype, mat) for n, (v, mat) in exp.items()}


def encoder_metadata(meta, src, mods, with_proj, ftype):
    """[(key, value type, value)]; value None = the key must be absent."""
    ib = meta["imagebind"]
    t = [("general.architecture", VT.STRING, "imagebind"), ("general.type", VT.STRING, "model"),
         ("general.file_type", VT.UINT32, ftype), ("general.quantization_version", VT.UINT32, 2),
         ("imagebind.embedding_length", VT.UINT32, meta["joint_dim"]),
         ("imagebind.modalities", (VT.ARRAY, VT.STRING), mods)]
    for m in ENCODER_ORDER + ["text"]:
        k, c = "imagebind.%s." % m, ib[m]
        if m not in mods:
            t.append((k + "embedding_length", VT.UINT32, None))
            continue
        scale = src.get("modality_postprocessors.%s.1.log_logit_scale" % m)  # none for vision
        t += [(k + "embedding_length", VT.UINT32, c["E"]),
              (k + "block_count", VT.UINT32, c["blocks"]),
              (k + "attention.head_count", VT.UINT32, c["heads"]),
              (k + "feed_forward_length", VT.UINT32, 4 * c["E"]),
              (k + "attention.layer_norm_epsilon", VT.FLOAT32, float(np.float32(1e-6))),
              (k + "stem.layer_norm_epsilon", VT.FLOAT32,
               float(np.float32(1e-5)) if m in STEM_LN else None),
              (k + "attention.bias_kv", VT.BOOL, c["bias_kv"]),
              (k + "token_count", VT.UINT32, c["tokens"]),
              (k + "log_logit_scale", VT.FLOAT32, None if scale is None else float(scale))]
    t += [("imagebind.llama_proj.input_length", VT.UINT32,
           meta["joint_dim"] if with_proj else None),
          ("imagebind.llama_proj.output_length", VT.UINT32, meta["hidden"] if with_proj else None)]
    return t
