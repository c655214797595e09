#!/usr/bin/env python3
"""test_convert.py — tools/convert-pandagpt.py against docs/format.md and an independent forward.

  test_convert.py --converter tools/convert-pandagpt.py --pg-logits build/tests/pg-logits
                  --workdir DIR [--source-root DIR] [--keep] [--jobs N]

1. make_fake_upstream.py writes tiny upstream checkpoints, one variant per directory, all in one
   process of a Python with torch ($PG_TORCH_PYTHON, else `python3`, else /usr/bin/python3;
   none: exit 77, skipped). crosscheck_hf_forward.py checks hf_forward.py against torch there.
2. The converter turns them into GGUF files (under this Python, sys.executable), in parallel.
3. Every file is checked against docs/format.md as format_ref.py writes it out (not taken from
   the converter): metadata, tensor names, shapes, types and values (f32 files against the fake
   sources; the other outtypes byte for byte against NumPy re-implementations of ggml's
   roundings and quantizers applied to the f32 file), and pg-logits' logits (public C API)
   against hf_forward.py, a float64 forward of the HF weights with the LoRA merged in float64.
4. Each error path must exit 1 with one "convert-pandagpt: error:" line naming the culprit, or
   2 with argparse's usage message.

One line per check, "PASS|FAIL|SKIP name: figure"; exit 1 if any check failed.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_forward  # noqa: E402
from format_ref import (ENCODER_MATRICES, ENCODER_ORDER, OUTTYPES, PAD_SCORE, QT, VT,  # noqa
                        Gguf, chat_template, encode, encoder_expected, encoder_metadata,
                        encoder_types, hf_keys, hf_weights_of, llm_expected, llm_metadata,
                        llm_shapes, llm_types, permute_qk, quant_bound)

# Logits, max |diff| / max |logit|. Against the float64 forward of the exact weights, the
# tolerance per outtype covers the weights' rounding, which on this tiny model (H = 64, every
# matrix quantized, token_embd too) measured f16 5.2e-4, bf16 4.2e-3, q8_0 1.5e-2, q4_0 0.22:
# the bounds are about 3x that. The library's own error is checked apart, against a float64
# forward of the file's dequantized weights, with f32's bound.
LOGIT_TOL = {"f32": 1e-5, "f16": 2e-3, "bf16": 1.5e-2, "q8_0": 4e-2, "q4_0": 0.5}
QUANTIZED = ("f16", "bf16", "q8_0", "q4_0")

# Keys the broken variants drop, add or reshape.
LORA = "llama_model.base_model.model.model.layers.%d.self_attn.%s_proj.lora_%s.default.weight"
LORA_K1_B, LORA_V0_A = LORA % (1, "k", "B"), LORA % (0, "v", "A")
LORA_EXTRA = "llama_model.base_model.model.model.layers.0.mlp.gate_proj.lora_A.default.weight"
IB_DROP = "modality_trunks.audio.blocks.1.attn.bias_k"
IB_EXTRA = "modality_trunks.vision.blocks.0.layer_scale_1"
IB_SHAPE = "modality_heads.thermal.2.weight"
IB_TEXT_DROP = "modality_trunks.text.blocks.1.mlp.fc2.bias"

VARIANTS = {  # directory: make_fake_upstream.py options
    "base": [],
    "single": ["--format", "bin-single", "--parts", "vicuna"],
    "st": ["--format", "safetensors", "--parts", "vicuna"],
    "nopad": ["--no-pad", "--parts", "vicuna"],
    "zero": ["--zero-lora", "--parts", "delta"],
    "old": ["--old-names", "--parts", "delta"],
    "noshare": ["--no-shared-storage", "--parts", "delta"],
    "rank16": ["--rank", "16", "--parts", "delta"],
    "d_drop": ["--parts", "delta", "--delta-drop", LORA_K1_B],
    "d_shape": ["--parts", "delta", "--delta-bad-shape", LORA_V0_A],
    "d_extra": ["--parts", "delta", "--delta-extra", LORA_EXTRA],
    "d_noproj": ["--parts", "delta", "--delta-drop", "llama_proj.weight"],
    "ib_drop": ["--parts", "imagebind", "--imagebind-drop", IB_DROP],
    "ib_extra": ["--parts", "imagebind", "--imagebind-extra", IB_EXTRA],
    "ib_shape": ["--parts", "imagebind", "--imagebind-bad-shape", IB_SHAPE],
    "ib_mask": ["--parts", "imagebind", "--bad-mask"],
    "ib_text_drop": ["--parts", "imagebind", "--imagebind-drop", IB_TEXT_DROP],
}

ERRORS = [  # run, what, exit status, texts of which the error line must hold one
    ("e_drop", "delta missing one lora_B", 1, [LORA_K1_B]),
    ("e_shape", "delta lora_A of wrong shape", 1, [LORA_V0_A]),
    ("e_extra", "delta with an unknown key", 1, [LORA_EXTRA]),
    ("e_rank", "delta rank 32 with --lora-r 16", 1, ["lora_A", "lora-r", "rank"]),
    ("e_noproj", "--encoder-out with a delta lacking llama_proj", 1, ["llama_proj.weight"]),
    ("e_ib_drop", "imagebind missing a key", 1, [IB_DROP]),
    ("e_ib_extra", "imagebind extra key", 1, [IB_EXTRA]),
    ("e_ib_shape", "imagebind wrong shape", 1, [IB_SHAPE]),
    ("e_ib_mask", "imagebind non-causal text mask", 1, ["text.mask"]),
    ("e_ib_text", "imagebind text key missing (checked without --with-text)", 1, [IB_TEXT_DROP]),
    ("e_noheads", "tiny ImageBind without --imagebind-heads", 1, ["--imagebind-heads"]),
    ("e_novicuna", "--llm-out without --vicuna (usage)", 2, []),
    ("e_nodelta", "--llm-out without --delta or --no-lora (usage)", 2, []),
    ("e_notok", "Vicuna dir without tokenizer.model", 1, ["tokenizer.model"]),
    ("e_noshard", "index.json names a missing shard", 1, ["pytorch_model-00002-of-00002.bin"]),
]


# ---- report ------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.failed, self.n = [], 0

    def check(self, name, ok, figure):
        self.n += 1
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, figure), flush=True)
        if not ok:
            self.failed.append(name)
        return ok

    def skip(self, name, why):
        print("SKIP %s: %s" % (name, why), flush=True)


R = Report()


def rel_diff(got, want):
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


# ---- running things ----------------------------------------------------------------------------

def find_torch_python():
    cands = [os.environ.get("PG_TORCH_PYTHON"), "python3", "/usr/bin/python3"]
    for py in [c for c in cands if c]:
        try:
            r = subprocess.run([py, "-c", "import torch, numpy"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return py
    return None


class Run:
    """One converter invocation: its arguments, then its exit status and stderr."""

    def __init__(self, args):
        self.args, self.rc, self.err = [str(a) for a in args], None, ""

    def start(self, converter):
        r = subprocess.run([sys.executable, converter] + self.args, capture_output=True,
                           text=True, timeout=300)
        self.rc, self.err = r.returncode, r.stderr
        return self


def pg_logits(exe, model, out, ids, embd, all_positions=True, lora=None, scale=None):
    """(float32 logits, "") or (None, pg-logits' stderr)."""
    cmd = [exe, model, "--ids", ",".join(str(i) for i in ids), "--embd", embd, "--out", out]
    if all_positions:
        cmd.append("--all")
    if lora:
        cmd += ["--lora", lora]
    if scale is not None:
        cmd += ["--lora-scale", repr(scale)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.fromfile(out, "<f4"), ""


# ---- generic checks ----------------------------------------------------------------------------

def check_metadata(tag, g, table):
    """table: [(key, value type or (ARRAY, item type), value)]; value None = must be absent."""
    bad = []
    for key, vt, want in table:
        got = g.value(key)
        if want is None or got is None:
            if (want is None) != (got is None):
                bad.append("%s %s" % (key, "missing" if got is None else
                                      "present (%r), must be absent" % (got,)))
            continue
        want_t = vt if isinstance(vt, tuple) else (vt,)
        if g.vtype(key) != want_t:
            bad.append("%s has type %s, want %s" % (key, [t.name for t in g.vtype(key)],
                                                    [t.name for t in want_t]))
        same = lambda x, y: abs(x - y) <= 1e-6 * max(1.0, abs(y)) if isinstance(y, float) \
            else x == y  # noqa: E731
        if isinstance(want, list):
            if len(got) != len(want):
                bad.append("%s has %d items, want %d" % (key, len(got), len(want)))
            else:
                i = next((i for i, (x, y) in enumerate(zip(got, want)) if not same(x, y)), None)
                if i is not None:
                    bad.append("%s[%d] = %r, want %r" % (key, i, got[i], want[i]))
        elif not same(got, want):
            bad.append("%s = %r, want %r" % (key, got, want))
    R.check(tag, not bad, "; ".join(bad[:6]) if bad else "%d keys as documented" % len(table))


def check_tensor_set(tag, g, shapes, types):
    """Exactly these names, each with its torch shape and GGUF type."""
    bad = []
    extra, missing = sorted(set(g.tensors) - set(shapes)), sorted(set(shapes) - set(g.tensors))
    if extra:
        bad.append("unexpected %s" % extra[:4])
    if missing:
        bad.append("missing %s" % missing[:4])
    for name in sorted(set(shapes) & set(g.tensors)):
        if g.shape(name) != tuple(shapes[name]):
            bad.append("%s shape %s, want %s" % (name, g.shape(name), tuple(shapes[name])))
        elif g.ttype(name) != types[name]:
            bad.append("%s type %s, want %s" % (name, g.ttype(name).name, types[name].name))
    R.check(tag, not bad, "; ".join(bad[:5]) if bad else
            "%d tensors, names/shapes/types as documented" % len(shapes))


def check_values(tag, g, expected, exact, tol=0.0):
    """Tensors of g against float64 values: equal where no arithmetic happened (names in
    exact), else within tol of max |want| per tensor (the converter merges in float32)."""
    worst, worst_name, bad = 0.0, "-", []
    for name, want in expected.items():
        if name not in g.tensors:
            continue
        got = g.f32(name).astype(np.float64)
        if name in exact:
            if not np.array_equal(got, want):
                bad.append("%s differs (max %.3g)" % (name, np.abs(got - want).max()))
            continue
        r = rel_diff(got, want)
        worst, worst_name = max((worst, worst_name), (r, name))
        if r > tol:
            bad.append("%s: rel %.3g > %g" % (name, r, tol))
    n_exact = len(set(exact) & set(expected))
    fig = "%d tensors equal the source exactly" % n_exact
    if len(expected) > n_exact:
        fig += ", %d merged ones within rel %.2g (%s; tol %g)" % (len(expected) - n_exact, worst,
                                                                  worst_name, tol)
    R.check(tag, not bad, "; ".join(bad[:4]) if bad else fig)


def check_encoding(tag, g, ref):
    """Every tensor of g is, byte for byte, the independent encoding of the same tensor of the
    f32 file ref in g's type; quantized ones also dequantize (gguf-py) within the bound."""
    bad, counts, worst = [], {}, {}
    for name in g.tensors:
        qt, x = g.ttype(name), ref.f32(name)
        counts[qt.name] = counts.get(qt.name, 0) + 1
        if g.raw(name) != encode(x, qt):
            bad.append("%s (%s) bytes differ from the ggml reference" % (name, qt.name))
        if qt in (QT.Q8_0, QT.Q4_0):
            err = np.abs(g.f32(name).astype(np.float64) - x)
            ratio = float((err / quant_bound(x, qt)).max())
            worst[qt.name] = max(worst.get(qt.name, 0.0), ratio)
            if ratio > 1:
                bad.append("%s dequantizes %.3gx past the bound" % (name, ratio))
    fig = ", ".join("%d %s" % (n, t) for t, n in sorted(counts.items()))
    if worst:
        fig += "; dequantized error / bound max " + ", ".join(
            "%s %.4f" % (t, r) for t, r in sorted(worst.items()))
    R.check(tag, not bad, "; ".join(bad[:4]) if bad else
            "bytes = independent encoding of the f32 file (" + fig + ")")


def check_same_tensors(tag, path_a, path_b):
    ga, gb = Gguf(path_a), Gguf(path_b)
    diff = sorted(set(ga.tensors) ^ set(gb.tensors))
    diff += [n for n in ga.tensors if n in gb.tensors and ga.raw(n) != gb.raw(n)]
    R.check(tag, not diff, "differ: %s" % diff[:4] if diff else
            "all %d tensors byte-identical" % len(ga.tensors))


def check_failure(tag, run, rc, needles):
    lines = [l for l in run.err.splitlines() if l.strip()]
    msg = [l for l in lines if l.startswith("convert-pandagpt: error:")]
    if run.rc != rc:
        return R.check(tag, False, "exit %s, want %d; stderr: %s" % (run.rc, rc,
                                                                     " | ".join(lines[-3:])))
    if rc == 2:
        return R.check(tag, any("usage" in l for l in lines) and "Traceback" not in run.err,
                       "exit 2: %s" % (lines[-1] if lines else "(no message)"))
    ok = len(msg) == 1 and "Traceback" not in run.err and any(n in msg[0] for n in needles)
    return R.check(tag, ok, "exit 1: %s" % (msg[0] if len(msg) == 1 else
                                            "want one error line naming %s; stderr: %s"
                                            % (needles, " | ".join(lines[-3:]))))


# ---- the suite ---------------------------------------------------------------------------------

class Suite:
    """The fake checkpoints, the conversions of them, and what the outputs must be."""

    def __init__(self, a, work, torch_py):
        self.a, self.work, self.torch_py = a, work, torch_py
        self.template = chat_template(a.source_root)

    def up(self, *p):
        return os.path.join(self.work, "up", *p)

    def out(self, *p):
        return os.path.join(self.work, "out", *p)

    # ---- 1. fake upstream checkpoints

    def generate(self):
        t0 = time.time()
        spec = os.path.join(self.work, "variants.json")
        json.dump([[self.up(n)] + v for n, v in VARIANTS.items()], open(spec, "w"))
        r = subprocess.run([self.torch_py, os.path.join(HERE, "make_fake_upstream.py"),
                            "--batch", spec], capture_output=True, text=True)
        if r.returncode:
            R.check("generate", False, "make_fake_upstream.py under %s: %s"
                    % (self.torch_py, r.stderr[-2000:]))
            return False
        print("INFO fake checkpoints: %d variants with %s in %.1f s"
              % (len(VARIANTS), self.torch_py, time.time() - t0))
        # Vicuna directories the converter must reject.
        for name, victim in (("notok", "tokenizer.model"),
                             ("noshard", "pytorch_model-00002-of-00002.bin")):
            shutil.copytree(self.up("base", "vicuna"), self.up(name, "vicuna"))
            os.remove(self.up(name, "vicuna", victim))
        # hf_forward itself against a torch forward written the other way round.
        r = subprocess.run([self.torch_py, os.path.join(HERE, "crosscheck_hf_forward.py"),
                            self.up("base")], capture_output=True, text=True)
        R.check("hf_forward.py vs an independent torch forward", r.returncode == 0,
                (r.stdout.strip() or r.stderr.strip()[-500:]).replace("hf_forward vs torch ", ""))
        self.meta = json.load(open(self.up("base", "meta.json")))
        self.npz = {n: np.load(self.up(n, "weights.npz")) for n in ("base", "nopad", "rank16")}
        return True

    # ---- 2. conversions

    def convert(self):
        U, O = self.up, self.out
        V, D, IB = U("base", "vicuna"), U("base", "delta.pt"), U("base", "imagebind.pth")

        def llm(vicuna, delta, out, *extra):
            return Run(["--vicuna", vicuna] + (["--delta", delta] if delta else []) +
                       ["--outtype", "f32", "--llm-out", O(out), "--quiet"] + list(extra))

        def enc(pth, out, *extra):
            return Run(["--imagebind", pth, "--outtype", "f32", "--encoder-out", O(out),
                        "--quiet"] + list(extra))

        runs = {
            "sharded": llm(V, D, "sharded-f32.gguf", "--imagebind", IB,
                           "--encoder-out", O("enc-f32.gguf")),
            "single": llm(U("single", "vicuna"), D, "single-f32.gguf", "--name", "tiny-single"),
            "safetensors": llm(U("st", "vicuna"), D, "st-f32.gguf"),
            "nopad": llm(U("nopad", "vicuna"), D, "nopad-f32.gguf"),
            "zero": llm(V, U("zero", "delta.pt"), "zero-f32.gguf"),
            "nolora": llm(V, None, "nolora-f32.gguf", "--no-lora"),
            "old": llm(V, U("old", "delta.pt"), "old-f32.gguf"),
            "noshare": llm(V, U("noshare", "delta.pt"), "noshare-f32.gguf"),
            "rank16": llm(V, U("rank16", "delta.pt"), "rank16-f32.gguf", "--lora-r", "16"),
            "allow_extra": llm(V, U("d_extra", "delta.pt"), "extra-f32.gguf", "--allow-extra"),
            "adapter": llm(V, D, "unmerged-f32.gguf", "--lora-adapter", O("adapter-f32.gguf")),
            "adapter_q8": Run(["--vicuna", V, "--delta", D, "--outtype", "q8_0",
                               "--lora-adapter", O("adapter-q8.gguf"), "--quiet"]),
            "text": enc(IB, "enc-text-f32.gguf", "--with-text"),
            "override": Run(["--vicuna", V, "--delta", D, "--imagebind", IB, "--outtype", "f16",
                             "--llm-outtype", "bf16", "--encoder-outtype", "q8_0", "--quiet",
                             "--llm-out", O("ovr-llm.gguf"), "--encoder-out", O("ovr-enc.gguf")]),
            "e_drop": llm(V, U("d_drop", "delta.pt"), "e_drop.gguf"),
            "e_shape": llm(V, U("d_shape", "delta.pt"), "e_shape.gguf"),
            "e_extra": llm(V, U("d_extra", "delta.pt"), "e_extra.gguf"),
            "e_rank": llm(V, D, "e_rank.gguf", "--lora-r", "16"),
            "e_noproj": enc(IB, "e_noproj.gguf", "--delta", U("d_noproj", "delta.pt")),
            "e_ib_drop": enc(U("ib_drop", "imagebind.pth"), "e_ib_drop.gguf"),
            "e_ib_extra": enc(U("ib_extra", "imagebind.pth"), "e_ib_extra.gguf"),
            "e_ib_shape": enc(U("ib_shape", "imagebind.pth"), "e_ib_shape.gguf"),
            "e_ib_mask": enc(U("ib_mask", "imagebind.pth"), "e_ib_mask.gguf"),
            "e_ib_text": enc(U("ib_text_drop", "imagebind.pth"), "e_ib_text.gguf"),
            "e_novicuna": Run(["--delta", D, "--llm-out", O("e_novicuna.gguf"), "--quiet"]),
            "e_nodelta": Run(["--vicuna", V, "--llm-out", O("e_nodelta.gguf"), "--quiet"]),
            "e_notok": llm(U("notok", "vicuna"), D, "e_notok.gguf"),
            "e_noshard": llm(U("noshard", "vicuna"), D, "e_noshard.gguf"),
        }
        for t in QUANTIZED:
            runs[t] = Run(["--vicuna", V, "--delta", D, "--imagebind", IB, "--outtype", t,
                           "--llm-out", O("llm-%s.gguf" % t), "--encoder-out",
                           O("enc-%s.gguf" % t), "--quiet"])
        # A checkpoint stores no head counts; for widths other than ImageBind-huge's the
        # converter takes them from --imagebind-heads (without it: an error naming the option).
        heads = ",".join("%s=%d" % (m, c["heads"]) for m, c in self.meta["imagebind"].items())
        for run in runs.values():
            if "--imagebind" in run.args:
                run.args += ["--imagebind-heads", heads]
        runs["e_noheads"] = enc(IB, "e_noheads.gguf")

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(self.a.jobs) as ex:
            list(ex.map(lambda r: r.start(self.a.converter), runs.values()))
        print("INFO %d converter runs in %.1f s (%d at a time)"
              % (len(runs), time.time() - t0, self.a.jobs))
        for n, run in runs.items():
            if not n.startswith("e_") and run.rc != 0:
                R.check("convert " + n, False, "exit %s: %s" % (run.rc, run.err.strip()[-1500:]))
        self.runs = runs

    def ok(self, *names):
        return all(self.runs[n].rc == 0 for n in names)

    # ---- expected logits and pg-logits

    def prepare_logits(self):
        m = self.meta
        self.base_hf = hf_keys(self.npz["base"])
        self.merged = hf_forward.merge_lora(self.base_hf, self.npz["base"], m["layers"],
                                            m["alpha"])
        self.unmerged = {k: v.astype(np.float64) for k, v in self.base_hf.items()}
        # ids 0..2, the last id ([PAD] with the padded vocabulary) and an embedding row "E".
        self.ids = [1, 5, 0, "E", 2, 17, 300, -1, 42, 100, 3, 7]
        self.row = np.random.default_rng(7).standard_normal(m["hidden"]).astype(np.float32)
        self.embd = self.out("row.f32")
        self.row.astype("<f4").tofile(self.embd)
        self.want_merged = self.forward(self.merged)
        self.want_unmerged = self.forward(self.unmerged)
        self.logits_seen = {}

    def items(self, vocab):
        return [vocab - 1 if i == -1 else i for i in self.ids]

    def forward(self, w, vocab=None):
        m = self.meta
        items = [self.row if i == "E" else i for i in self.items(vocab or m["n_vocab"])]
        return hf_forward.forward(w, m["layers"], m["heads"], m["rms_eps"], items)

    def logits(self, model, tag, vocab=None, **kw):
        vocab = vocab or self.meta["n_vocab"]
        fname = "".join(c if c.isalnum() else "_" for c in tag)[:80] + ".logits"
        got, err = pg_logits(self.a.pg_logits, model, self.out(fname), self.items(vocab),
                             self.embd, **kw)
        if got is not None:
            got = got.reshape(-1, vocab)
        self.logits_seen[tag] = got
        return got, err

    def check_logits(self, tag, model, want, tol, **kw):
        got, err = self.logits(model, tag, want.shape[-1], **kw)
        if got is None:
            R.check(tag, False, "pg-logits failed: " + err)
        elif got.shape != want.shape:
            R.check(tag, False, "logits shape %s, want %s" % (got.shape, want.shape))
        else:
            r = rel_diff(got, want)
            R.check(tag, r <= tol, "max rel %.2e (tol %g)" % (r, tol))
            return got
        return None

    # ---- 3. the LLM in f32: three Vicuna layouts, metadata, tensors, Q/K, [PAD]

    def check_llm_f32(self):
        m, O = self.meta, self.out
        V = m["n_vocab"]
        for n, f in (("sharded", "sharded-f32"), ("single", "single-f32"),
                     ("safetensors", "st-f32")):
            if self.ok(n):
                self.check_logits("%s f32 logits vs float64 HF forward (LoRA merged)" % n,
                                  O(f + ".gguf"), self.want_merged, LOGIT_TOL["f32"])
        if not self.ok("sharded"):
            return
        got, err = self.logits(O("sharded-f32.gguf"), "batched", all_positions=False)
        r = rel_diff(got[-1], self.want_merged[-1]) if got is not None else None
        R.check("sharded f32 batched (tokens and row as batches) last position",
                r is not None and r <= 1e-5,
                "max rel %.2e (tol 1e-05)" % r if r is not None else "pg-logits failed: " + err)

        g = self.g32 = Gguf(O("sharded-f32.gguf"))
        check_metadata("sharded f32 LLM metadata (llama.cpp keys, [PAD], chat template)", g,
                       llm_metadata(m, V, True, 0, "vicuna", True, self.template))
        check_tensor_set("sharded f32 LLM tensors", g, llm_shapes(m, V), llm_types(m, V, "f32"))
        exp = llm_expected(self.merged, m)
        check_values("sharded f32 LLM values vs source (+ float64 merge, Q/K permuted)", g,
                     {n: v for n, (v, _) in exp.items()},
                     {n for n, (_, merged) in exp.items() if not merged}, 1e-6)

        # Q/K permutation as the brief states it, and that it matters.
        bad, apart = [], []
        H, NH = m["hidden"], m["heads"]
        for i in range(m["layers"]):
            for p, gn in (("q", "attn_q"), ("k", "attn_k")):
                w = self.merged["model.layers.%d.self_attn.%s_proj.weight" % (i, p)]
                got = g.f32("blk.%d.%s.weight" % (i, gn)).astype(np.float64)
                perm = w.reshape(NH, 2, H // NH // 2, H).swapaxes(1, 2).reshape(H, H)
                r_perm, r_plain = rel_diff(got, perm), rel_diff(got, w)
                apart.append(r_plain)
                if not (r_perm <= 1e-6 and r_plain > 1e-2):
                    bad.append("blk.%d.%s: vs permuted %.2g, vs unpermuted %.2g"
                               % (i, gn, r_perm, r_plain))
        R.check("Q/K rows permuted (reshape(n_head,2,d/2,H).swapaxes(1,2)) after the merge",
                not bad, "; ".join(bad) if bad else
                "all %d match the permuted merge; the unpermuted one is >= %.2f rel away"
                % (len(apart), min(apart)))

        toks, tt, sc = (g.value("tokenizer.ggml." + k) for k in ("tokens", "token_type",
                                                                  "scores"))
        rows = g.shape("token_embd.weight")[0]
        R.check("[PAD] token appended (Vicuna v0's 32001-style vocabulary)",
                len(toks) == V == m["n_pieces"] + 1 and toks[-1] == "[PAD]" and tt[-1] == 4
                and sc[-1] == PAD_SCORE and g.value("llama.vocab_size") == rows == V,
                "%d tokens, last %r type %d score %g, llama.vocab_size %s, token_embd rows %d"
                % (len(toks), toks[-1], tt[-1], sc[-1], g.value("llama.vocab_size"), rows))
        lg = self.logits_seen.get("sharded f32 logits vs float64 HF forward (LoRA merged)")
        if lg is not None:
            pos = self.ids.index(-1)
            r = rel_diff(lg[pos], self.want_merged[pos])
            R.check("[PAD] id %d evaluated by pg-logits (position %d)" % (V - 1, pos),
                    r <= 1e-5 and np.isfinite(lg).all(), "max rel %.2e" % r)

        if self.ok("single"):
            name = Gguf(O("single-f32.gguf")).value("general.name")
            R.check("--name sets general.name", name == "tiny-single", "general.name = %r" % name)
        if self.ok("nopad"):
            gn, vp = Gguf(O("nopad-f32.gguf")), m["n_pieces"]
            check_metadata("--no-pad vocabulary: %d pieces, no [PAD]" % vp, gn,
                           llm_metadata(m, vp, False, 0, "vicuna", True, self.template))
            check_tensor_set("--no-pad tensors", gn, llm_shapes(m, vp), llm_types(m, vp, "f32"))
            w = hf_forward.merge_lora(hf_keys(self.npz["nopad"]), self.npz["base"], m["layers"],
                                      m["alpha"])
            self.check_logits("--no-pad f32 logits vs float64 HF forward", O("nopad-f32.gguf"),
                              self.forward(w, vp), LOGIT_TOL["f32"])

    # ---- 4. LoRA: zero vs non-zero, --no-lora, old names, storages, --allow-extra, rank 16

    def check_lora(self):
        m, O = self.meta, self.out
        if self.ok("zero"):
            z = self.check_logits("zero LoRA f32 logits vs float64 HF forward without LoRA",
                                  O("zero-f32.gguf"), self.want_unmerged, LOGIT_TOL["f32"])
            nz = self.logits_seen.get("sharded f32 logits vs float64 HF forward (LoRA merged)")
            if z is not None and nz is not None:
                d = float(np.abs(z - nz).max())
                R.check("zero vs non-zero LoRA logits differ", d > 1e-2,
                        "max |diff| %.3g (must be > 0.01)" % d)
        if self.ok("nolora"):
            gl = Gguf(O("nolora-f32.gguf"))
            self.check_logits("--no-lora f32 logits vs float64 HF forward without LoRA",
                              O("nolora-f32.gguf"), self.want_unmerged, LOGIT_TOL["f32"])
            merged = gl.value("pandagpt.lora.merged")
            R.check("--no-lora: pandagpt.lora.merged false or absent", not merged,
                    "value %r" % merged)
            exp = {n: v for n, (v, _) in llm_expected(self.unmerged, m).items()}
            check_values("--no-lora tensors = source exactly (Q/K permuted)", gl, exp, set(exp))
        for run, path, tag in (
                ("old", "old-f32.gguf", "old lora_A.weight naming gives the same file"),
                ("noshare", "noshare-f32.gguf", "delta with one storage per tensor gives the "
                 "same file as one shared storage"),
                ("allow_extra", "extra-f32.gguf", "--allow-extra: the extra delta key is "
                 "ignored, same file")):
            if self.ok(run, "sharded"):
                check_same_tensors(tag, O(path), O("sharded-f32.gguf"))
        if self.ok("rank16"):
            w = hf_forward.merge_lora(self.base_hf, self.npz["rank16"], m["layers"], m["alpha"])
            self.check_logits("rank 16 with --lora-r 16 (alpha/r = 2) logits vs float64 merge",
                              O("rank16-f32.gguf"), self.forward(w), LOGIT_TOL["f32"])
            rank = Gguf(O("rank16-f32.gguf")).value("pandagpt.lora.rank")
            R.check("rank 16: pandagpt.lora.rank", rank == 16, "value %r" % rank)

    # ---- 5. outtypes

    def check_outtypes(self):
        m, O, V = self.meta, self.out, self.meta["n_vocab"]
        for t in QUANTIZED:
            if not self.ok(t):
                continue
            g = Gguf(O("llm-%s.gguf" % t))
            self.check_logits("%s logits vs float64 forward of the exact weights" % t,
                              O("llm-%s.gguf" % t), self.want_merged, LOGIT_TOL[t])
            # The library's own error, apart from the weights' rounding.
            self.check_logits("%s logits vs float64 forward of the file's dequantized weights"
                              % t, O("llm-%s.gguf" % t), self.forward(hf_weights_of(g, m)),
                              LOGIT_TOL["f32"])
            check_metadata("%s LLM general.file_type" % t, g,
                           [("general.file_type", VT.UINT32, OUTTYPES[t][1])])
            check_tensor_set("%s LLM tensor types" % t, g, llm_shapes(m, V), llm_types(m, V, t))
            if self.ok("sharded"):
                check_encoding("%s LLM tensors vs f32 file" % t, g, self.g32)
        if self.ok("override"):
            go, ge = Gguf(O("ovr-llm.gguf")), Gguf(O("ovr-enc.gguf"))
            lt = {go.ttype(n).name for n in go.tensors if len(go.shape(n)) == 2}
            et = {ge.ttype(n).name for n in ge.tensors
                  if n.endswith(ENCODER_MATRICES) and ge.shape(n)[-1] % 32 == 0}
            R.check("--llm-outtype bf16 / --encoder-outtype q8_0 override --outtype f16",
                    lt == {"BF16"} and et == {"Q8_0"}, "LLM matrices %s, encoder matrices %s"
                    % (sorted(lt), sorted(et)))

    # ---- 6. the LoRA adapter

    def check_adapter(self):
        m, O = self.meta, self.out
        if self.ok("adapter"):
            ga = Gguf(O("adapter-f32.gguf"))
            check_metadata("adapter metadata", ga, [
                ("general.architecture", VT.STRING, "llama"),
                ("general.type", VT.STRING, "adapter"), ("adapter.type", VT.STRING, "lora"),
                ("adapter.lora.alpha", VT.FLOAT32, float(m["alpha"]))])
            H, r, delta = m["hidden"], m["rank"], self.npz["base"]
            exp, shapes = {}, {}
            for i in range(m["layers"]):
                for p, gn in zip("qkvo", ("attn_q", "attn_k", "attn_v", "attn_output")):
                    ka, kb = hf_forward.lora_keys(i, p, delta)
                    b = delta[kb].astype(np.float64)
                    name = "blk.%d.%s.weight.lora_" % (i, gn)
                    exp[name + "a"] = delta[ka].astype(np.float64)
                    exp[name + "b"] = permute_qk(b, m["heads"]) if p in "qk" else b
                    shapes[name + "a"], shapes[name + "b"] = (r, H), (H, r)
            check_tensor_set("adapter tensors (lora_a [r,H], lora_b [H,r], F32)", ga, shapes,
                             {n: QT.F32 for n in shapes})
            check_values("adapter values = delta A, B (B rows permuted for attn_q/attn_k)", ga,
                         exp, set(exp))
            gu = Gguf(O("unmerged-f32.gguf"))
            merged = gu.value("pandagpt.lora.merged")
            q0 = permute_qk(self.base_hf["model.layers.0.self_attn.q_proj.weight"], m["heads"])
            R.check("--lora-adapter: --llm-out is the unmerged base",
                    not merged and np.array_equal(gu.f32("blk.0.attn_q.weight"), q0),
                    "pandagpt.lora.merged %r, blk.0.attn_q.weight = permuted base W" % merged)
            for scale in (None, 0.5):
                tag = "unmerged base + --lora adapter%s vs float64 merge" % (
                    "" if scale is None else " --lora-scale %g" % scale)
                want = self.want_merged if scale is None else self.forward(hf_forward.merge_lora(
                    self.base_hf, delta, m["layers"], m["alpha"], scale))
                got, err = self.logits(O("unmerged-f32.gguf"), tag, lora=O("adapter-f32.gguf"),
                                       scale=scale)
                if got is None:
                    R.check(tag, False, "pg-logits failed: " + err)
                else:
                    rr = rel_diff(got, want)
                    R.check(tag, rr <= 1e-5, "max rel %.2e (tol 1e-05)" % rr)
        if self.ok("adapter_q8"):
            g8 = Gguf(O("adapter-q8.gguf"))
            types = {g8.ttype(n).name for n in g8.tensors}
            R.check("adapter with --outtype q8_0 is F16", types == {"F16"},
                    "types %s" % sorted(types))
            if self.ok("adapter"):
                check_encoding("adapter F16 tensors = fp16 of the F32 adapter", g8,
                               Gguf(O("adapter-f32.gguf")))

    # ---- 7. the encoders

    def check_encoder(self):
        m, O = self.meta, self.out
        src = self.npz["base"]
        exp = encoder_expected(src, m, False, True)
        shapes = {n: v.shape for n, (v, _) in exp.items()}
        if self.ok("sharded"):
            g32 = Gguf(O("enc-f32.gguf"))
            check_metadata("encoder metadata (5 towers + llama_proj)", g32,
                           encoder_metadata(m, src, ENCODER_ORDER, True, 0))
            check_tensor_set("encoder tensors (no text without --with-text)", g32, shapes,
                             encoder_types(exp, "f32"))
            check_values("encoder values = source (reshaped/squeezed per docs)", g32,
                         {n: v.astype(np.float64) for n, (v, _) in exp.items()}, set(exp))
        if self.ok("text"):
            gt = Gguf(O("enc-text-f32.gguf"))
            exp_t = encoder_expected(src, m, True, False)
            check_metadata("--with-text encoder metadata (6 towers, no llama_proj without "
                           "--delta)", gt, encoder_metadata(m, src, ENCODER_ORDER + ["text"],
                                                            False, 0))
            check_tensor_set("--with-text encoder tensors", gt,
                             {n: v.shape for n, (v, _) in exp_t.items()},
                             encoder_types(exp_t, "f32"))
            check_values("--with-text encoder values = source", gt,
                         {n: v.astype(np.float64) for n, (v, _) in exp_t.items()}, set(exp_t))
        for t in QUANTIZED:
            if not self.ok(t):
                continue
            g = Gguf(O("enc-%s.gguf" % t))
            check_metadata("%s encoder general.file_type" % t, g,
                           [("general.file_type", VT.UINT32, OUTTYPES[t][1])])
            check_tensor_set("%s encoder tensor types" % t, g, shapes, encoder_types(exp, t))
            if self.ok("sharded"):
                check_encoding("%s encoder tensors vs f32 file" % t, g, g32)

    # ---- 8. error paths

    def check_errors(self):
        for run, what, rc, needles in ERRORS:
            check_failure("error: " + what, self.runs[run], rc, needles)


def main():
    t0 = time.time()
    ap = argparse.ArgumentParser()
    ap.add_argument("--converter", required=True)
    ap.add_argument("--pg-logits", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--source-root", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    a = ap.parse_args()

    torch_py = find_torch_python()
    if not torch_py:
        print("SKIP convert: no Python with torch to write the fake upstream checkpoints "
              "(tried $PG_TORCH_PYTHON, python3, /usr/bin/python3; set PG_TORCH_PYTHON)")
        return 77
    if not os.path.isfile(a.converter):
        print("FAIL convert: the converter %s does not exist" % a.converter)
        return 1
    work = os.path.abspath(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "out"))

    s = Suite(a, work, torch_py)
    if s.generate():
        s.convert()
        s.prepare_logits()
        s.check_llm_f32()
        s.check_lora()
        s.check_outtypes()
        s.check_adapter()
        s.check_encoder()
        s.check_errors()

    dt = time.time() - t0
    if R.failed:
        print("convert: %d of %d checks FAILED (%.1f s; files kept in %s): %s"
              % (len(R.failed), R.n, dt, work, "; ".join(R.failed)))
        return 1
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("convert: all %d checks passed (%.1f s)" % (R.n, dt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
