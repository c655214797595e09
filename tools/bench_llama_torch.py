#!/usr/bin/env python3
"""bench_llama_torch.py — the PyTorch side of pandagpt-bench --random 7b -p 512 -n 128 and of
pandagpt-bench --ttft --random 13b (CUDA).

What PandaGPT users run today: a Hugging Face transformers LlamaForCausalLM in float16 on the GPU
(the attention implementation transformers picks by default, SDPA). Here with random weights
and LLaMA-7B's configuration (4096 hidden, 32 layers, 32 heads, FFN 11008, vocabulary 32000,
RMSNorm eps 1e-6, untied LM head), made directly on the device, then timed doing the same work
as pandagpt-bench:

  prefill  one forward over n_prompt random token ids with use_cache=True
  decode   n_decode steps, each one token through the model with the cache, its greedy next
           token brought to the host (as the library's session hands logits to its caller every
           step, and as generate() checks its stopping criteria every step)

each timed with torch.cuda.synchronize() on both ends, after a warm-up (16-token prompt, 8
steps). Also times model.generate(max_new_tokens=n_decode, greedy), the call PandaGPT itself
makes, for its decode rate (total minus the measured prefill).

  python3 tools/bench_llama_torch.py [--preset 7b|13b|1b|tiny] [-p 512] [-n 128]
                                     [--no-generate] [--device cuda|cpu]

--ttft times instead what PandaGPT does for the first token of a turn about an image (its
generate() with inputs_embeds): the ImageBind-huge vision tower of tools/bench_imagebind_torch.py
in the same dtype on a random [1, 3, 224, 224] image, llama_proj (Linear(1024, hidden)), the
embeddings of -p prompt positions with the projected row put at position 5 (after "### Human:
<Img>"), one forward over them with use_cache=True, and the argmax of the last logits brought to
the host; next to it the prefill alone (-p token ids) and the image alone. Best of --reps (10)
each, after two warm-ups, synchronised on both ends:

  python3 tools/bench_llama_torch.py --ttft --preset 13b -p N   (N: pandagpt-bench --ttft's
                                                                 ttft_n_prompt)

(--device cpu, with the tiny presets, only tries the script where there is no GPU.)

Prints a readable report and then "key value" lines (torch_prefill_tok_s, torch_decode_tok_s,
torch_generate_decode_tok_s; with --ttft torch_ttft_ms, torch_ttft_prefill_ms,
torch_ttft_image_ms) for scripts/gpu-check.sh. Exit 0 on success, 77 when torch, transformers
or a CUDA device is missing (nothing to compare against), 1 on failure.
"""

import argparse
import sys
import time

PRESETS = {
    # hidden, layers, heads, kv heads, ffn, vocab — as tools/random_llama.c's presets
    "tiny": (256, 4, 8, 8, 688, 1320),
    "1b": (2048, 22, 32, 4, 5632, 32000),
    "7b": (4096, 32, 32, 32, 11008, 32000),
    "13b": (5120, 40, 40, 40, 13824, 32001),  # Vicuna-13B v0: LLaMA's 32000 + [PAD]
}


def ttft(args, model, ids, dev, dtype, sync):
    """--ttft: an image turn's first token, the prefill alone and the image alone (see the top)."""
    import torch
    from bench_imagebind_torch import make_tower  # tools/, the script's own directory

    t0 = time.perf_counter()
    tower = make_tower("vision", args.encoder_preset, dev, dtype)
    hidden = model.config.hidden_size
    proj = torch.nn.Linear(tower.dim, hidden).to(dev, dtype).eval()  # llama_proj: 5 M params
    sync()
    print(f"encoder  ImageBind-{args.encoder_preset} vision tower + llama_proj "
          f"({sum(p.numel() for p in tower.parameters()) / 1e6:.1f} M params) made in "
          f"{time.perf_counter() - t0:.1f} s")
    img = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
    img = img.to(dev, dtype)
    n = args.prompt
    slot = min(5, n - 1)
    embed = model.get_input_embeddings()

    @torch.inference_mode()
    def turn():
        sync()
        t0 = time.perf_counter()
        row = proj(tower(img))                  # [1, hidden]: the modality slot's row
        e = embed(ids[:, :n])
        e = torch.cat((e[:, :slot], row[:, None, :].to(e.dtype), e[:, slot + 1:]), dim=1)
        out = model(inputs_embeds=e, use_cache=True)
        int(out.logits[:, -1].argmax(-1))       # the first token, on the host
        sync()
        return time.perf_counter() - t0

    @torch.inference_mode()
    def prefill():
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=ids[:, :n], use_cache=True)
        int(out.logits[:, -1].argmax(-1))
        sync()
        return time.perf_counter() - t0

    @torch.inference_mode()
    def image():
        sync()
        t0 = time.perf_counter()
        tower(img)
        sync()
        return time.perf_counter() - t0

    best = {}
    for name, fn in (("ttft", turn), ("prefill", prefill), ("image", image)):
        fn(), fn()  # warm-ups: kernels, cuBLAS plans, the allocator
        best[name] = min(fn() for _ in range(args.reps))
    print(f"ttft     {best['ttft'] * 1e3:9.3f} ms   image + {n} prompt positions (one the "
          f"image's row) to the first token, best of {args.reps}")
    print(f"prefill  {best['prefill'] * 1e3:9.3f} ms   {n} token ids to the first token")
    print(f"image    {best['image'] * 1e3:9.3f} ms   the vision tower alone")
    if dev.type == "cuda":
        print(f"memory   {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB peak allocated")
    print(f"torch_ttft_ms {best['ttft'] * 1e3:.4f}")
    print(f"torch_ttft_prefill_ms {best['prefill'] * 1e3:.4f}")
    print(f"torch_ttft_image_ms {best['image'] * 1e3:.4f}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="7b")
    ap.add_argument("-p", "--prompt", type=int, help="prompt positions (512; --ttft 29)")
    ap.add_argument("-n", "--decode", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-generate", action="store_true", help="skip the generate() timing")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--ttft", action="store_true", help="time an image turn's first token")
    ap.add_argument("--encoder-preset", choices=("huge", "tiny"), default="huge")
    ap.add_argument("--reps", type=int, default=10, help="--ttft: timed calls of each")
    args = ap.parse_args()
    if args.prompt is None:
        args.prompt = 29 if args.ttft else 512  # 29: pandagpt-bench --ttft's prompt, demo vocab
    if args.prompt < 1 or args.reps < 1:
        ap.error("-p and --reps must be at least 1")

    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(f"SKIP: {e}")
        return 77
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77

    def sync():
        if on_gpu:
            torch.cuda.synchronize()
    import transformers

    hidden, layers, heads, kv_heads, ffn, vocab = PRESETS[args.preset]
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                      max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    torch.set_default_dtype(torch.float16 if on_gpu else torch.float32)
    if hasattr(torch, "set_default_device"):  # torch >= 2.0: made on the device directly
        with dev:
            model = LlamaForCausalLM(cfg)
    else:
        model = LlamaForCausalLM(cfg).to(dev)
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():  # random weights, whatever initialisation transformers skipped
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
    model.eval()
    sync()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0) if on_gpu else 'CPU'}")
    print(f"model    random LLaMA {args.preset} ({n_params / 1e9:.2f} G params, "
          f"{next(model.parameters()).dtype}, attention "
          f"{getattr(model.config, '_attn_implementation', '?')}) made on {args.device} in "
          f"{time.perf_counter() - t0:.1f} s")

    g = torch.Generator(device="cpu").manual_seed(args.seed)
    ids = torch.randint(3, vocab, (1, args.prompt), generator=g).to(dev)
    if args.ttft:
        return ttft(args, model, ids, dev, torch.float16 if on_gpu else torch.float32, sync)

    @torch.inference_mode()
    def run(n_prompt, n_decode):
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=ids[:, :n_prompt], use_cache=True)
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        nxt_host = int(nxt)
        sync()
        t1 = time.perf_counter()
        pkv = out.past_key_values
        for _ in range(n_decode):
            out = model(input_ids=nxt, past_key_values=pkv, use_cache=True)
            pkv = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt_host = int(nxt)  # to the host every step
        sync()
        t2 = time.perf_counter()
        del nxt_host
        return t1 - t0, t2 - t1

    run(16, 8)  # warm-up: cuBLAS handles, kernels, the allocator
    t_prefill, t_decode = run(args.prompt, args.decode)
    t_prefill2, _ = run(args.prompt, 0)
    t_prefill = min(t_prefill, t_prefill2)
    prefill_tps = args.prompt / t_prefill
    decode_tps = args.decode / t_decode if args.decode else 0.0
    print(f"prompt  {prefill_tps:8.1f} tok/s   ({args.prompt} tokens in {t_prefill:.3f} s, "
          f"best of 2)")
    print(f"decode  {decode_tps:8.1f} tok/s   ({args.decode} steps in {t_decode:.3f} s)")

    gen_tps = 0.0
    if not args.no_generate and args.decode > 0:
        with torch.inference_mode():
            mask = torch.ones_like(ids)
            model.generate(input_ids=ids[:, :16], attention_mask=mask[:, :16], max_new_tokens=4,
                           do_sample=False, pad_token_id=0)
            sync()
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.decode,
                                 min_new_tokens=args.decode, do_sample=False, pad_token_id=0)
            sync()
            t_gen = time.perf_counter() - t0
        n_new = out.shape[1] - ids.shape[1]
        if n_new > 1 and t_gen > t_prefill:
            gen_tps = (n_new - 1) / (t_gen - t_prefill)
        print(f"generate {n_new} new tokens in {t_gen:.3f} s: decode ~{gen_tps:.1f} tok/s "
              f"(total minus the prefill above)")
    if on_gpu:
        print(f"memory   {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB peak allocated")
    print(f"torch_prefill_tok_s {prefill_tps:.2f}")
    print(f"torch_decode_tok_s {decode_tps:.2f}")
    print(f"torch_generate_decode_tok_s {gen_tps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
