#!/usr/bin/python3
"""bench_imagebind_torch.py — PyTorch's encode time for the ImageBind-huge trunks, per modality.

The side-by-side half of pandagpt-bench-encoders: the same towers at the real shapes (spec
§5.0–§5.9), random weights, torch.inference_mode(), written the way upstream ImageBind (and
PandaGPT's vendored copy) runs them, so that the time is the time PyTorch takes:

  patch embedding  vision: PadIm2Video (an image repeated to 2 frames) + Conv3d k=s=(2,14,14),
                   no bias; audio: Conv2d k16 s10; thermal/depth: Conv2d k16 s16; IMU: 250
                   patches of 6x8 samples + Linear(48, 512); all without bias
  stem             LayerNorm(E, eps 1e-5) (not vision), CLS, + pos_embed, vision's pre-LN (1e-6)
  trunk            [L, B, E] (batch_first=False): x += MHA(LN1 x), x += fc2(GELU(fc1(LN2 x)))
                   with nn.MultiheadAttention(add_bias_kv for audio/thermal/depth/imu), exact
                   GELU, eps 1e-6
  head             LayerNorm over all tokens, CLS, Linear(E, 1024, no bias), L2-normalise,
                   × the logit scale (thermal 10, depth/imu 5), mean over clips
Batching as upstream: audio's 3 clips and video's 15 clips run as one batch.

  python3 tools/bench_imagebind_torch.py [--device cpu|cuda] [--dtype float32|float16]
        [-t 2] [--reps N] [--video-reps N] [--modalities image,audio,thermal,video]
        [--preset huge|tiny] [-o torch.json]

Writes {"image": seconds, ..., "torch_version": ..., "device": ..., "device_name": ...,
"dtype": ..., "threads": T, "blas": paths} for --torch of pandagpt-bench-encoders. Each
modality is warmed up first, then timed as the best of --reps calls (video: --video-reps).
CPU (the default; float32): one warm-up call (video with one clip), 3 calls (video 1); needs
torch (Debian's python3-torch is in /usr/bin/python3 on the project VM). CUDA (--device cuda
--dtype float16 as scripts/gpu-check.sh runs it: model and inputs in fp16 on the GPU, the
towers made there): two warm-up calls of the whole input, 20 calls (video 10), each between
torch.cuda.synchronize() calls; exit 77 when torch sees no CUDA device. --preset tiny (the
widths of tools/random_imagebind's tiny preset) only tries the script.

nn.Linear's time on the CPU is the BLAS's that torch calls, and the script prints which one is
loaded. Debian's torch calls libblas.so.3, which on the project VM is the netlib reference
(~40x slower than an optimised one). Run with LD_LIBRARY_PATH pointing at OpenBLAS's OpenMP
build (its pthread build fights torch's OpenMP threads for the cores): docs/perf.md gives the
commands.
"""

import argparse
import json
import math
import os
import platform
import sys
import time


def _threads_from_argv(default=2):
    """-t T, read before torch is imported so that the BLAS's own pool starts with T threads."""
    for i, a in enumerate(sys.argv[1:], 1):
        if a in ("-t", "--threads") and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
        if a.startswith("-t") and not a.startswith("--") and len(a) > 2:
            return a[2:]
    return str(default)


if __name__ == "__main__":  # not when tools/bench_llama_torch.py imports the towers
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads_from_argv()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# name: (width E, blocks, heads, tokens incl. CLS, bias_kv, stem LN, logit scale)
TOWERS = {
    "vision": (1280, 32, 16, 257, False, False, 1.0),
    "audio": (768, 12, 12, 229, True, True, 1.0),   # PandaGPT drops audio's ×20
    "thermal": (768, 12, 12, 197, True, True, 10.0),
    "depth": (384, 12, 8, 197, True, True, 5.0),
    "imu": (512, 6, 8, 251, True, True, 5.0),
}
DIM = 1024
# tools/random_imagebind's "tiny" preset (shared/reference/imagebind-tiny's widths): tries only
TOWERS_TINY = {
    "vision": (64, 2, 4, 257, False, False, 1.0),
    "audio": (48, 2, 4, 229, True, True, 1.0),
    "thermal": (40, 2, 4, 197, True, True, 10.0),
    "depth": (32, 2, 4, 197, True, True, 5.0),
    "imu": (24, 2, 2, 251, True, True, 5.0),
}
DIM_TINY = 32
PRESETS = {"huge": (TOWERS, DIM), "tiny": (TOWERS_TINY, DIM_TINY)}

# modality: (tower, input shape, clips folded into the batch)
MODALITIES = {
    "image": ("vision", (1, 3, 224, 224), 1),
    "audio": ("audio", (3, 1, 128, 204), 3),
    "thermal": ("thermal", (1, 1, 224, 224), 1),
    "depth": ("depth", (1, 1, 224, 224), 1),
    "imu": ("imu", (1, 6, 2000), 1),
    "video": ("vision", (15, 3, 2, 224, 224), 15),
}
ISSUE_TORCH_S = {"image": 2.35, "audio": 1.15, "video": 64.6, "thermal": 0.27}


class MultiheadAttention(nn.MultiheadAttention):
    """ImageBind's wrapper: self-attention, no weights returned (spec §5.0)."""

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


class Block(nn.Module):
    def __init__(self, e, heads, bias_kv):
        super().__init__()
        self.norm_1 = nn.LayerNorm(e, eps=1e-6)
        self.attn = MultiheadAttention(e, heads, bias=True, add_bias_kv=bias_kv)
        self.norm_2 = nn.LayerNorm(e, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e))

    def forward(self, x):
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class Tower(nn.Module):
    def __init__(self, name, preset="huge"):
        super().__init__()
        towers, dim = PRESETS[preset]
        e, blocks, heads, tokens, bias_kv, stem, scale = towers[name]
        self.name, self.scale, self.dim = name, scale, dim
        if name == "vision":
            self.patch = nn.Conv3d(3, e, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False)
        elif name == "audio":
            self.patch = nn.Conv2d(1, e, kernel_size=16, stride=10, bias=False)
        elif name == "imu":
            self.patch = nn.Linear(48, e, bias=False)
        else:
            self.patch = nn.Conv2d(1, e, kernel_size=16, stride=16, bias=False)
        self.stem_norm = nn.LayerNorm(e, eps=1e-5) if stem else None
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, e))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, tokens, e))
        self.pre_norm = nn.LayerNorm(e, eps=1e-6) if name == "vision" else None
        self.blocks = nn.ModuleList(Block(e, heads, bias_kv) for _ in range(blocks))
        if bias_kv:  # nn.MultiheadAttention leaves bias_k/bias_v at xavier_normal; any values do
            for b in self.blocks:
                nn.init.normal_(b.attn.bias_k, std=0.02)
                nn.init.normal_(b.attn.bias_v, std=0.02)
        self.head_norm = nn.LayerNorm(e, eps=1e-6)
        self.head = nn.Linear(e, dim, bias=False)

    def forward(self, x):
        if self.name == "vision" and x.dim() == 4:  # PadIm2Video(repeat, 2)
            x = x.unsqueeze(2).repeat(1, 1, 2, 1, 1)
        if self.name == "imu":  # [B, 6, 2000] -> [B, 250, 6·8], feature c·8 + k
            b = x.shape[0]
            x = self.patch(x.unfold(-1, 8, 8).permute(0, 2, 1, 3).reshape(b, 250, 48))
        else:
            x = self.patch(x).flatten(2).transpose(1, 2)
        if self.stem_norm is not None:
            x = self.stem_norm(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        x = x.transpose(0, 1)  # [L, B, E]
        for blk in self.blocks:
            x = blk(x)
        x = x.transpose(0, 1)
        x = self.head(self.head_norm(x)[:, 0, :])
        return F.normalize(x, dim=-1) * self.scale


def loaded_blas():
    """The BLAS libraries mapped into this process (what nn.Linear's addmm calls), by path."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                base = os.path.basename(path)
                if "/" in path and ("blas" in base or "mkl" in base):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return ", ".join(sorted(libs)) or "unknown"


def encode(tower, x, clips):
    y = tower(x)
    return y.reshape(1, clips, tower.dim).mean(dim=1) if clips > 1 else y


def make_tower(name, preset, device, dtype):
    """A tower with random weights, made on device (torch >= 2.0; else made on the CPU and
    moved), in dtype, in eval mode."""
    if device.type == "cpu":
        tower = Tower(name, preset)
    elif hasattr(torch, "set_default_device"):  # torch >= 2.0: a device is a context manager
        with device:
            tower = Tower(name, preset)
    else:
        tower = Tower(name, preset).to(device)
    return tower.to(dtype).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    ap.add_argument("--reps", type=int, help="timed calls (CPU 3, CUDA 20)")
    ap.add_argument("--video-reps", type=int, help="timed video calls (CPU 1, CUDA 10)")
    ap.add_argument("--modalities", default="image,audio,thermal,video")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="huge")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("-o", "--output", help="JSON file for pandagpt-bench-encoders --torch")
    args = ap.parse_args()
    mods = args.modalities.split(",")
    for m in mods:
        if m not in MODALITIES:
            ap.error(f"unknown modality {m!r}")
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77
    if args.dtype == "float16" and not on_gpu:
        print("note     float16 on the CPU: many ops are slow or missing there", flush=True)
    reps = args.reps if args.reps else (20 if on_gpu else 3)
    video_reps = args.video_reps if args.video_reps else (10 if on_gpu else 1)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device_name = torch.cuda.get_device_name(0) if on_gpu else cpu
    print(f"torch {torch.__version__}: ImageBind-{args.preset} trunks, {args.dtype}, random "
          f"weights, on {args.device}")
    if on_gpu:
        print(f"device   {device_name} (CUDA {torch.version.cuda}); host {cpu}")
    else:
        print(f"machine  {cpu}; threads {torch.get_num_threads()}")
    blas = ""
    if not on_gpu:
        torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS
        blas = loaded_blas()
        print(f"blas     {blas}")
        if "/blas/libblas.so" in blas:  # Debian's libblas3: the netlib reference, one thread
            print("warning  this is the reference BLAS (Debian's libblas3 alternative): "
                  "nn.Linear runs unoptimised and single-threaded, far below what a PyTorch "
                  "wheel (MKL) does; run with LD_LIBRARY_PATH set to OpenBLAS's OpenMP build "
                  "(docs/perf.md)", flush=True)
        elif "openblas-pthread" in blas:
            print("warning  OpenBLAS's pthread build keeps its own thread pool, which competes "
                  "with torch's OpenMP threads (3x slower on 2 cores); use its OpenMP build "
                  "(libopenblas0-openmp, docs/perf.md)", flush=True)

    towers, results = {}, {}
    with torch.inference_mode():
        for m in mods:
            name, shape, clips = MODALITIES[m]
            if name not in towers:
                t0 = time.perf_counter()
                towers[name] = make_tower(name, args.preset, device, dtype)
                sync()
                n = sum(p.numel() for p in towers[name].parameters())
                print(f"built    {name} tower ({n / 1e6:.1f} M params) in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
            tower = towers[name]
            x = torch.randn(*shape).to(device, dtype)
            sync()
            t0 = time.perf_counter()
            if on_gpu:  # the whole input, twice: kernels, cuBLAS plans, the allocator
                encode(tower, x, clips)
                encode(tower, x, clips)
            elif m == "video":  # one clip: a whole video would cost a minute more
                encode(tower, x[:1], 1)
            else:
                encode(tower, x, clips)
            sync()
            print(f"warm-up  {m:<8} {time.perf_counter() - t0:.3f} s", flush=True)
            n_reps = video_reps if m == "video" else reps
            best = math.inf
            for _ in range(n_reps):
                sync()
                t0 = time.perf_counter()
                encode(tower, x, clips)
                sync()
                best = min(best, time.perf_counter() - t0)
            results[m] = best
            if on_gpu:
                print(f"timed    {m:<8} best of {n_reps}: {best * 1e3:.3f} ms", flush=True)
            else:
                print(f"timed    {m:<8} best of {n_reps}: {best:.3f} s", flush=True)
    if on_gpu:
        print(f"memory   {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB peak allocated")

    unit, uname = (1e3, "ms") if on_gpu else (1.0, "s")
    print(f"\n{'modality':<8} {'clips':>5} {'torch ' + uname:>9} {'issue PyTorch-CPU s':>20}")
    for m in mods:
        issue = ISSUE_TORCH_S.get(m) if args.preset == "huge" else None
        print(f"{m:<8} {MODALITIES[m][2]:>5} {results[m] * unit:>9.3f} "
              f"{issue if issue is not None else '-':>20}")
    if args.output:
        out = dict(results, torch_version=torch.__version__, device=args.device,
                   device_name=device_name, dtype=args.dtype, preset=args.preset,
                   threads=torch.get_num_threads(), blas=blas)
        with open(args.output, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"written  {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
