#!/usr/bin/env python3
"""crosscheck_hf_forward.py — optional: checks hf_forward.py against a second, torch-based forward.

Not part of `meson test` (it needs torch and runs under the torch Python). The torch forward is
written the other way round: it loads the torch files themselves (shards and delta, not
weights.npz), permutes Q/K to the adjacent-pair order with docs/format.md's formula, applies RoPE
as Meta's LLaMA code does (complex rotation of adjacent pairs), and keeps the LoRA unmerged as
peft runs it (y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ). Agreement to ~1e-12 checks hf_forward, the permutation
formula and the merge at once.

  /usr/bin/python3 tests/convert/crosscheck_hf_forward.py FAKEDIR   (from make_fake_upstream.py)
"""
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_forward  # noqa: E402


def load_vicuna(vdir):
    sd = {}
    for f in sorted(glob.glob(os.path.join(vdir, "pytorch_model*.bin"))):
        sd.update(torch.load(f))
    return {k: v.double() for k, v in sd.items()}


def torch_forward(sd, delta, cfg, items, alpha):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps, L = H // nh, cfg["rms_norm_eps"], cfg["num_hidden_layers"]
    x = torch.stack([sd["model.embed_tokens.weight"][it] if isinstance(it, int)
                     else torch.from_numpy(it).double() for it in items])
    T = x.shape[0]

    def to_pairs(w):  # HF rotate-half rows -> adjacent pairs (docs/format.md)
        return w.reshape(nh, 2, hd // 2, -1).transpose(1, 2).reshape(w.shape)

    def lin(h, i, m):
        w = sd["model.layers.%d.self_attn.%s_proj.weight" % (i, m)]
        ka, kb = hf_forward.lora_keys(i, m, delta)
        a, b = delta[ka].detach().double(), delta[kb].detach().double()
        if m in ("q", "k"):
            w, b = to_pairs(w), to_pairs(b)
        return h @ w.T + (alpha / a.shape[0]) * ((h @ a.T) @ b.T)

    def norm(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps) * w

    freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    cis = torch.polar(torch.ones(T, hd // 2, dtype=torch.float64),
                      torch.outer(torch.arange(T, dtype=torch.float64), freqs))[:, None, :]

    def rope(v):
        c = torch.view_as_complex(v.reshape(T, nh, hd // 2, 2).contiguous())
        return torch.view_as_real(c * cis).reshape(T, nh, hd)

    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(L):
        p = "model.layers.%d." % i
        h = norm(x, sd[p + "input_layernorm.weight"])
        q = rope(lin(h, i, "q").reshape(T, nh, hd)).transpose(0, 1)
        k = rope(lin(h, i, "k").reshape(T, nh, hd)).transpose(0, 1)
        v = lin(h, i, "v").reshape(T, nh, hd).transpose(0, 1)
        att = torch.softmax(q @ k.transpose(1, 2) / hd ** 0.5 + mask, dim=-1)
        x = x + lin((att @ v).transpose(0, 1).reshape(T, H), i, "o")
        h = norm(x, sd[p + "post_attention_layernorm.weight"])
        x = x + (torch.nn.functional.silu(h @ sd[p + "mlp.gate_proj.weight"].T)
                 * (h @ sd[p + "mlp.up_proj.weight"].T)) @ sd[p + "mlp.down_proj.weight"].T
    return (norm(x, sd["model.norm.weight"]) @ sd["lm_head.weight"].T).numpy()


def main():
    fake = sys.argv[1]
    meta = json.load(open(os.path.join(fake, "meta.json")))
    cfg = json.load(open(os.path.join(fake, "vicuna", "config.json")))
    sd = load_vicuna(os.path.join(fake, "vicuna"))
    delta = torch.load(os.path.join(fake, "delta.pt"))
    rng = np.random.default_rng(5)
    V = cfg["vocab_size"]
    items = [1, 5, 0, rng.standard_normal(cfg["hidden_size"]), 2, 17, 300, V - 1, 42, 100, 3, 7]
    want = torch_forward(sd, delta, cfg, items, meta["alpha"])
    npz = np.load(os.path.join(fake, "weights.npz"))
    w = hf_forward.merge_lora({k: npz[k] for k in npz.files if k.startswith(("model.", "lm_head"))},
                              npz, cfg["num_hidden_layers"], meta["alpha"])
    got = hf_forward.forward(w, cfg["num_hidden_layers"], cfg["num_attention_heads"],
                             cfg["rms_norm_eps"], items)
    rel = np.abs(got - want).max() / np.abs(want).max()
    print("hf_forward vs torch (Meta-style RoPE, unmerged LoRA): max rel %.2e over %s" %
          (rel, want.shape))
    sys.exit(0 if rel < 1e-10 else 1)


if __name__ == "__main__":
    main()
