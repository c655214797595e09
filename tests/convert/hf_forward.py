"""hf_forward.py — an independent float64 NumPy LLaMA forward in the HF layout (spec §3.3).

It reads the HF weights as they are (q/k in the rotate-half order, no permutation), so it shares
nothing with the converter or the library:

  RMSNorm      x · (mean(x²) + eps)^-½ · w
  attention    q, k, v = h·Wᵀ; rotate-half RoPE with inv_freq[j] = 10000^(−2j/d); causal softmax
  FFN          down(silu(gate(h)) ⊙ up(h))
  logits       lm_head(RMSNorm(x))

merge_lora adds the PandaGPT LoRA in float64: W' = W + scale·(alpha/r)·B@A (spec §4.1).
"""
import numpy as np

PROJS = ("q", "k", "v", "o")


def lora_keys(i, m, delta):
    """The (A, B) keys of layer i, projection m, in whichever spelling the delta uses."""
    base = "llama_model.base_model.model.model.layers.%d.self_attn.%s_proj." % (i, m)
    for mid in ("default.", ""):
        a, b = base + "lora_A." + mid + "weight", base + "lora_B." + mid + "weight"
        if a in delta and b in delta:
            return a, b
    raise KeyError("no LoRA for layer %d %s_proj" % (i, m))


def merge_lora(weights, delta, n_layer, alpha, scale=1.0):
    """A copy of the HF weights (float64) with the LoRA of `delta` merged into q, k, v, o."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    for i in range(n_layer):
        for m in PROJS:
            ka, kb = lora_keys(i, m, delta)
            a, b = np.asarray(delta[ka], np.float64), np.asarray(delta[kb], np.float64)
            key = "model.layers.%d.self_attn.%s_proj.weight" % (i, m)
            w[key] = w[key] + scale * (alpha / a.shape[0]) * (b @ a)
    return w


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(w, n_layer, n_head, eps, items):
    """Logits [T, V] for every position. items: token ids (int) or embedding rows (length H)."""
    emb = np.asarray(w["model.embed_tokens.weight"], np.float64)
    x = np.stack([emb[it] if isinstance(it, (int, np.integer)) else np.asarray(it, np.float64)
                  for it in items])
    T, H = x.shape
    hd = H // n_head
    inv_freq = 10000.0 ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    angle = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    cos = np.cos(np.concatenate([angle, angle], axis=-1))[:, None, :]  # [T, 1, hd]
    sin = np.sin(np.concatenate([angle, angle], axis=-1))[:, None, :]
    future = np.triu(np.ones((T, T), bool), 1)
    for i in range(n_layer):
        p = "model.layers.%d." % i
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, n_head, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, n_head, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, n_head, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        s[:, future] = -np.inf
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        a = np.einsum("hts,shd->thd", s, v).reshape(T, H)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    return rms_norm(x, w["model.norm.weight"], eps) @ w["lm_head.weight"].T
