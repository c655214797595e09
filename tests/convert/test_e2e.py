#!/usr/bin/env python3
"""test_e2e.py — the shared end-to-end PandaGPT case through our converter and library.

../shared/reference/pandagpt-e2e holds a real-format tiny Vicuna (HF directory with [PAD]), a
PandaGPT delta (nn.Parameter views into one fp16 storage) and a tiny ImageBind .pth, plus what
llama.cpp and a float64 NumPy forward computed from them. This test converts the three with
tools/convert-pandagpt.py and checks:

  * every tensor of the merged F32 LLM is bit-identical to llama.cpp's own conversion of the
    LoRA-merged model (sha256 per tensor in merged-f32.gguf.json), in the same order, and the
    metadata llama.cpp wrote is there with the same values;
  * libpandagpt (pg-logits, public API) on the converted file reproduces llama.cpp's logits at
    the last prompt position and, teacher-forced, the top-10 of all 16 generated steps, with the
    modality row (row.npy) at the slot: max |diff| / max |logit| <= 1e-4 (the issue's bound);
  * the same through the unmerged base + --lora-adapter, merged by pg_model_load;
  * llama_proj from the encoder GGUF maps u.npy to v_f64.npy and row_f64.npy within 1e-6.

Usage: test_e2e.py --converter tools/convert-pandagpt.py --pg-logits build/.../pg-logits
Reference dir: $PG_REFERENCE_DIR, else ../shared/reference next to the source tree; exit 77
(skip) when absent.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
except ImportError:
    print("SKIP: the gguf Python package is not installed (pip install gguf)")
    sys.exit(77)

TINY_HEADS = "vision=4,audio=4,thermal=4,depth=4,imu=2,text=2"  # imagebind-tiny/README.md
failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def reference_dir(source_root):
    d = os.environ.get("PG_REFERENCE_DIR") or os.path.join(source_root, "..", "shared",
                                                           "reference")
    if not os.path.isdir(os.path.join(d, "pandagpt-e2e")):
        print(f"SKIP: reference data not found at {d} (set PG_REFERENCE_DIR)")
        sys.exit(77)
    return d


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        sys.exit(1)
    return r


def pg_logits(tool, model, seq, row, tmp, lora=None):
    """Teacher-forced logits of every position of seq (None = the embedding row)."""
    embd = os.path.join(tmp, "row.f32")
    row.astype("<f4").tofile(embd)
    out = os.path.join(tmp, "logits.f32")
    ids = ",".join("E" if t is None else str(t) for t in seq)
    cmd = [tool, model, "--ids", ids, "--embd", embd, "--out", out, "--all"]
    if lora:
        cmd += ["--lora", lora]
    run(cmd)
    return np.fromfile(out, "<f4").reshape(len(seq), -1)


def check_llm_file(path, ref):
    r = gguf.GGUFReader(path)
    names = [t.name for t in r.tensors]
    check(names == [t["name"] for t in ref["tensors"]],
          f"LLM tensor order equals llama.cpp's ({len(names)} tensors)")
    by_name = {t.name: t for t in r.tensors}
    same = sum(hashlib.sha256(by_name[t["name"]].data.tobytes()).hexdigest() == t["sha256"]
               for t in ref["tensors"] if t["name"] in by_name)
    check(same == len(ref["tensors"]),
          f"LLM F32 tensors bit-identical to llama.cpp's conversion: {same}/{len(ref['tensors'])}")
    fields = r.fields
    bad = []
    for key, want in ref["metadata"].items():
        if key in ("general.name", "general.size_label"):
            continue  # cosmetic: llama.cpp derives them from its model card heuristics
        f = fields.get(key)
        if f is None:
            bad.append(f"{key} missing")
            continue
        if isinstance(want, str) and want.startswith("[array of"):
            n = int(want.split()[-1].rstrip("]"))
            if len(f.data) != n:
                bad.append(f"{key} has {len(f.data)} entries, want {n}")
            continue
        got = f.contents()
        if isinstance(want, float):
            ok = abs(float(got) - want) <= 1e-12 * abs(want)
        else:
            ok = got == want
        if not ok:
            bad.append(f"{key} = {got!r}, want {want!r}")
    check(not bad, "llama.cpp's metadata present with its values" +
          (": " + "; ".join(bad) if bad else f" ({len(ref['metadata'])} keys)"))
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    scores = fields["tokenizer.ggml.scores"].contents()
    check(tokens[32000] == "[PAD]" and types[32000] == 4 and scores[32000] == -1000.0,
          "token 32000 is [PAD], user-defined, score -1000")


def check_case(name, case_dir, tool, model, tmp, lora=None):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    row = np.load(os.path.join(case_dir, "row.npy"))
    last = np.load(os.path.join(case_dir, "logits_last.npy"))
    seq = case["sequence"] + case["gen"][:-1]
    logits = pg_logits(tool, model, seq, row, tmp, lora)
    n = case["n_prompt"]
    scale = np.abs(last).max()
    err = np.abs(logits[n - 1] - last).max() / scale
    label = f"{name}{' (base + LoRA adapter)' if lora else ''}"
    check(err <= 1e-4, f"{label}: last prompt logits vs llama.cpp: max rel {err:.2e} "
          f"(tol 1e-4)")
    # teacher-forced generation: row n-1+k chose gen[k]; gen_top10[k] is the row after gen[k]
    worst, agree = 0.0, 0
    for k, top in enumerate(case["gen_top10"][:-1]):
        got = logits[n + k]
        ids = [int(i) for i, _ in top]
        want = np.array([v for _, v in top])
        worst = max(worst, np.abs(got[ids] - want).max() / scale)
    for k, g in enumerate(case["gen"]):
        agree += int(np.argmax(logits[n - 1 + k]) == g or case["gen_margin"][k] < 1e-4 * scale)
    check(worst <= 1e-4, f"{label}: teacher-forced top-10 over {len(case['gen']) - 1} steps: "
          f"max rel {worst:.2e} (tol 1e-4)")
    check(agree == len(case["gen"]), f"{label}: greedy tokens {agree}/{len(case['gen'])}")


def check_projection(enc_path, case_dir):
    r = gguf.GGUFReader(enc_path)
    t = {x.name: x for x in r.tensors}
    w = np.array(t["llama_proj.weight"].data, np.float64)  # reader gives torch order [H, D]
    b = np.array(t["llama_proj.bias"].data, np.float64)
    u = np.load(os.path.join(case_dir, "u.npy")).astype(np.float64)
    v = u @ w.T + b
    v_ref = np.load(os.path.join(case_dir, "v_f64.npy"))
    row_ref = np.load(os.path.join(case_dir, "row_f64.npy"))
    err_v = np.abs(v - v_ref).max() / np.abs(v_ref).max()
    err_row = np.abs(v.sum(0) - row_ref).max() / np.abs(row_ref).max()
    check(err_v <= 1e-6 and err_row <= 1e-6,
          f"llama_proj in the encoder GGUF: v max rel {err_v:.1e}, summed row {err_row:.1e} "
          f"(tol 1e-6)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--converter", required=True)
    ap.add_argument("--pg-logits", required=True)
    ap.add_argument("--source-root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    a = ap.parse_args()
    ref_dir = reference_dir(a.source_root)
    e2e = os.path.join(ref_dir, "pandagpt-e2e")
    delta = os.path.join(e2e, "pandagpt-delta", "pytorch_model.pt")
    vicuna = os.path.join(e2e, "vicuna-tiny")
    imagebind = os.path.join(ref_dir, "imagebind-tiny", "model", "imagebind_tiny_seed0.pth")
    conv = [sys.executable, a.converter, "--quiet"]

    with tempfile.TemporaryDirectory(prefix="pg_e2e_") as tmp:
        llm = os.path.join(tmp, "llm-f32.gguf")
        enc = os.path.join(tmp, "enc-f32.gguf")
        base = os.path.join(tmp, "base-f32.gguf")
        adapter = os.path.join(tmp, "lora-f32.gguf")
        run(conv + ["--vicuna", vicuna, "--delta", delta, "--imagebind", imagebind,
                    "--llm-out", llm, "--encoder-out", enc, "--outtype", "f32",
                    "--imagebind-heads", TINY_HEADS])
        run(conv + ["--vicuna", vicuna, "--delta", delta, "--llm-out", base,
                    "--lora-adapter", adapter, "--outtype", "f32"])

        check_llm_file(llm, json.load(open(os.path.join(e2e, "merged-f32.gguf.json"))))
        for name in ("image", "image_audio"):
            case_dir = os.path.join(e2e, "cases", name)
            check_case(name, case_dir, a.pg_logits, llm, tmp)
            check_case(name, case_dir, a.pg_logits, base, tmp, lora=adapter)
            check_projection(enc, case_dir)

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
