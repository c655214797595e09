#!/usr/bin/env bash
# gpu-check.sh — everything the CUDA backend must show on a real GPU, in one run of under
# 8 minutes on one H200 (the project brief: run it first whenever a session has a device).
#
#   1. versions    nvidia-smi, nvcc (and no GPU: say so and exit 77, nothing else is run)
#   2. build       a fresh build dir, CUDA enabled for sm_90 only, every media library disabled
#                  (the device machine has none and installs nothing)
#   3. gpu tests   meson test --suite gpu: tests/gpu/test_cuda_ops (every op, CUDA vs CPU, NMSE)
#                  tests/gpu/test_cuda_e2e (models on CUDA vs CPU, the pandagpt-e2e case from
#                  the media wholly on the GPU, ImageBind, out of device memory, leaks) and
#                  tests/gpu/test_cuda_encoders (each encoder vs imagebind-tiny, F32 and F16),
#                  PG_GPU_REQUIRED=1 so none may skip
#   4. sanitizer   the three GPU tests once under compute-sanitizer --tool memcheck (PG_GPU_QUICK=1:
#                  reduced shapes, sanitized kernels run far slower)
#   5. benchmark   pandagpt-cuda-bw (device copy bandwidth, cuBLAS F16 GEMM rate), then, most
#                  important first: the six ImageBind-huge encoders in F16
#                  (pandagpt-bench-encoders --device cuda, next to tools/bench_imagebind_torch.py:
#                  the same towers in PyTorch fp16 on the same GPU, each next to its FLOP floor at
#                  the measured GEMM rate and the issue's targets); the time to first token of an
#                  image + a one-line question on a random 13B (pandagpt-bench --ttft, next to
#                  tools/bench_llama_torch.py --ttft: transformers fp16 + the PyTorch vision
#                  tower; bound: weight bytes / copy bandwidth + the image's FLOP floor); then
#                  pandagpt-bench --random 7b --device cuda -p 512 -n 128 in F16, its PyTorch
#                  side (tools/bench_llama_torch.py), and Q4_0; a table of ours, PyTorch, the
#                  ratio and the bound (decode: weight bytes / copy bandwidth; prefill: the
#                  cuBLAS F16 GEMM rate / 2·params)
#   6. cpu tests   the CPU/API suites of the same build (PG_DEVICE_AUTO now means the GPU), with
#                  the time that is left
# Each step runs under `timeout`, within an overall budget (PG_GPU_CHECK_BUDGET, 470 s) of which
# each step leaves enough for the benchmark after it; a step that cannot run (no torch, no
# compute-sanitizer, the build failed) prints SKIP and the rest go on. Nothing is installed.
# The summary (steps, figures, the table) is printed last and, when $OUT is set (the device tool
# collects it), written to $OUT/gpu-check.txt, with the full log in $OUT/gpu-check.log and
# meson's test log in $OUT/testlog-gpu.txt.
#
# With the device tool (one prepared run; the session's device time is 15 minutes in all):
#   here, once:   scripts/gpu-check.sh --prepare
#                 (needs ../shared/reference and a python3 with numpy + gguf: converts the
#                 pandagpt-e2e LLM and copies its text-part files into .gpu-check/, which
#                 .git/info/exclude ignores, since ../shared does not travel and the device has
#                 no gguf module)
#   then:         run  command: scripts/gpu-check.sh   carry: [".gpu-check"]   timeout_s: 540
#                 and give_back afterwards unless rerunning at once. Without .gpu-check the e2e
#                 test skips only its pandagpt-e2e part.
# Figures go to docs/perf.md with the date.
#
# Environment: PG_GPU_CHECK_BUDGET (seconds, 470), PG_GPU_BUILD (build dir, build-gpu),
# PG_GPU_KEEP_BUILD=1 (reuse that build dir, rebuilding only what changed: for a second run on
# a machine still warm), PG_GPU_CHECK_FORCE=1 (go on without a GPU: to try the script itself),
# PG_GPU_CHECK_SMALL=1 (the benchmark with tiny models on the CPU, ours and PyTorch's: to try
# its steps, parsing and table where there is no GPU).
# Exit: 0 every step passed or skipped; 1 a step failed or timed out; 77 no GPU (nothing run);
# 2 bad arguments.

set -u
cd "$(dirname "$0")/.."
root=$(pwd)

# ---- --prepare: on the development machine ---------------------------------------------------
if [ "${1:-}" = "--prepare" ]; then
    ref=${PG_REFERENCE_DIR:-$root/../shared/reference}
    py=${PG_PYTHON:-python3}
    dst=$root/.gpu-check
    set -e
    [ -d "$ref/pandagpt-e2e" ] || { echo "no $ref/pandagpt-e2e (set PG_REFERENCE_DIR)"; exit 1; }
    "$py" -c 'import numpy, gguf' ||
        { echo "$py cannot import numpy and gguf (set PG_PYTHON)"; exit 1; }
    rm -rf "$dst"
    mkdir -p "$dst"
    "$py" tools/convert-pandagpt.py --quiet --outtype f32 \
        --vicuna "$ref/pandagpt-e2e/vicuna-tiny" \
        --delta "$ref/pandagpt-e2e/pandagpt-delta/pytorch_model.pt" \
        --llm-out "$dst/e2e-llm-f32.gguf"
    for c in "$ref"/pandagpt-e2e/cases/*/; do
        name=$(basename "$c")
        mkdir -p "$dst/reference/pandagpt-e2e/cases/$name"
        cp "$c/case.json" "$c/row.npy" "$c/logits_last.npy" "$c/u.npy" \
            "$dst/reference/pandagpt-e2e/cases/$name/"
    done
    # the encoders of the e2e case (imagebind-tiny + its llama_proj), F32 and F16, and the
    # reference inputs and outputs tests/gpu/test_cuda_encoders and the e2e test read
    for t in f32 f16; do
        "$py" tools/convert-pandagpt.py --quiet --outtype "$t" \
            --imagebind "$ref/imagebind-tiny/model/imagebind_tiny_seed0.pth" \
            --imagebind-heads vision=4,audio=4,thermal=4,depth=4,imu=2,text=2 \
            --delta "$ref/pandagpt-e2e/pandagpt-delta/pytorch_model.pt" \
            --encoder-out "$dst/e2e-encoder-$t.gguf"
    done
    ib=$dst/reference/imagebind-tiny
    mkdir -p "$ib/media" "$ib/preproc" "$ib/model_io"
    cp "$ref"/imagebind-tiny/media/{scene.jpg,speech_22k.wav} "$ib/media/"
    cp "$ref"/imagebind-tiny/preproc/{vision,audio,thermal,video.clip0_center}.npy "$ib/preproc/"
    cp "$ref"/imagebind-tiny/model_io/{depth,imu}.input.npy \
        "$ref"/imagebind-tiny/model_io/*final.npy "$ib/model_io/"
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu-check/' "$exclude" 2>/dev/null || echo '/.gpu-check/' >>"$exclude"
    du -sh "$dst"
    echo "prepared $dst: run scripts/gpu-check.sh with the device tool, carry [\".gpu-check\"]"
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [--prepare]"; exit 2; }

# ---- bookkeeping ---------------------------------------------------------------------------
budget=${PG_GPU_CHECK_BUDGET:-470}
build=${PG_GPU_BUILD:-build-gpu}
out=${OUT:-}
tee_pid=""
if [ -n "$out" ]; then
    mkdir -p "$out"
    exec > >(tee -a "$out/gpu-check.log") 2>&1
    tee_pid=$!
fi
t_start=$SECONDS
jobs=$(nproc 2>/dev/null || echo 4)
steps=()   # "name|status|seconds"
failed=0

left() { echo $((budget - (SECONDS - t_start))); }

# run_step NAME LIMIT RESERVE CMD... — runs CMD under timeout: LIMIT seconds, or what the
# budget leaves once RESERVE seconds are kept for the steps after it. Its output is also copied
# to $step_log when that is set. Records PASS, FAIL (rc), TIMEOUT or SKIP (rc 77, or no time).
# Never in a pipeline: it records into this shell's variables.
step_log=""
run_step() {
    local name=$1 limit=$2 reserve=$3 rc t0
    shift 3
    local avail
    avail=$(($(left) - reserve))
    [ "$avail" -lt "$limit" ] && limit=$avail
    echo
    echo "==== $name (limit ${limit} s, $(left) s of the budget left) ===="
    if [ "$limit" -lt 5 ]; then
        echo "SKIP: no time left in the budget"
        steps+=("$name|SKIP (no time)|0")
        return 77
    fi
    t0=$SECONDS
    if [ -n "$step_log" ]; then
        timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$step_log"
        rc=${PIPESTATUS[0]}
    else
        timeout --kill-after=10 "$limit" "$@"
        rc=$?
    fi
    local dt=$((SECONDS - t0))
    case $rc in
        0) steps+=("$name|PASS|$dt") ;;
        77) steps+=("$name|SKIP|$dt") ;;
        124|137) steps+=("$name|TIMEOUT after ${limit} s|$dt"); failed=1 ;;
        *) steps+=("$name|FAIL (rc $rc)|$dt"); failed=1 ;;
    esac
    return "$rc"
}

skip_step() {
    echo
    echo "==== $1 ===="
    echo "SKIP: $2"
    steps+=("$1|SKIP ($2)|0")
}

# ---- 1. versions ---------------------------------------------------------------------------
echo "gpu-check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $jobs CPUs, commit" \
     "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
gpu_name=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
               --format=csv
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
fi
nvcc_bin=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
if [ -n "$nvcc_bin" ]; then
    "$nvcc_bin" --version | tail -n 2
    PATH="$PATH:$(dirname "$nvcc_bin")"
    export PATH
else
    echo "nvcc: not found"
fi
# meson and ninja: commands, or the Python packages of the same names (the device image has them
# as pip packages)
meson=()
if command -v meson >/dev/null 2>&1; then
    meson=(meson)
elif python3 -c 'import mesonbuild' >/dev/null 2>&1; then
    meson=(python3 -m mesonbuild.mesonmain)
fi
if ! command -v ninja >/dev/null 2>&1; then
    ninja_dir=$(python3 -c 'import ninja; print(ninja.BIN_DIR)' 2>/dev/null) &&
        PATH="$PATH:$ninja_dir"
fi
echo "meson $(${meson[@]+"${meson[@]}"} --version 2>/dev/null || echo 'not found'), ninja" \
     "$(ninja --version 2>/dev/null || echo 'not found')"
if [ -z "$gpu_name" ]; then
    echo "no GPU: nvidia-smi is missing or lists no device. This script checks the CUDA backend on"
    echo "the device machine (see its header: the device tool's run, command scripts/gpu-check.sh)."
    if [ "${PG_GPU_CHECK_FORCE:-0}" != 1 ]; then
        echo "nothing checked (exit 77); PG_GPU_CHECK_FORCE=1 goes on anyway"
        exit 77
    fi
    echo "PG_GPU_CHECK_FORCE=1: going on without a GPU (the GPU steps will fail or skip)"
fi

# The pandagpt-e2e files made by --prepare (the reference itself does not travel).
if [ -f "$root/.gpu-check/e2e-llm-f32.gguf" ]; then
    export PG_GPU_E2E_LLM=$root/.gpu-check/e2e-llm-f32.gguf
    export PG_GPU_REFERENCE_DIR=$root/.gpu-check/reference
    echo "pandagpt-e2e: $PG_GPU_E2E_LLM"
    for t in f32 f16; do
        [ -f "$root/.gpu-check/e2e-encoder-$t.gguf" ] || continue
        if [ "$t" = f32 ]; then export PG_GPU_E2E_ENCODER=$root/.gpu-check/e2e-encoder-f32.gguf
        else export PG_GPU_E2E_ENCODER_F16=$root/.gpu-check/e2e-encoder-f16.gguf; fi
    done
else
    echo "pandagpt-e2e: no .gpu-check/ (scripts/gpu-check.sh --prepare): that part may skip"
fi

# ---- 2. build ------------------------------------------------------------------------------
# Time kept for the later steps: the benchmark (~200 s, estimated step by step in section 5)
# and the tests before it.
bench_reserve=200
if [ "${PG_GPU_KEEP_BUILD:-0}" != 1 ] || [ ! -f "$build/build.ninja" ]; then
    rm -rf "$build"
fi
build_ok=0
if [ -z "$nvcc_bin" ]; then
    skip_step build "no nvcc"
elif [ ${#meson[@]} = 0 ] || ! command -v ninja >/dev/null 2>&1; then
    skip_step build "no meson or no ninja"
elif run_step build 220 $((bench_reserve + 60)) bash -c "
        [ -f '$build/build.ninja' ] && echo 'reusing $build' ||
        ${meson[*]} setup '$build' -Dbuildtype=release -Dcuda=enabled -Dsm_archs=90 \
            -Djpeg=disabled -Dpng=disabled -Dsndfile=disabled -Dffmpeg=disabled \
            >'$build.setup.log' 2>&1 || { cat '$build.setup.log'; exit 1; }
        grep -A8 '^  Features' '$build.setup.log' 2>/dev/null || true
        ninja -C '$build' -j $jobs 2>&1 | grep -v '^\[' ; exit \${PIPESTATUS[0]}"; then
    build_ok=1
fi
rm -f "$build.setup.log"

# ---- 3. GPU tests --------------------------------------------------------------------------
if [ $build_ok = 1 ]; then
    run_step "gpu tests" 150 $((bench_reserve + 60)) env PG_GPU_REQUIRED=1 \
        "${meson[@]}" test -C "$build" --suite gpu --no-rebuild --verbose --num-processes 1
    [ -n "$out" ] && [ -f "$build/meson-logs/testlog.txt" ] &&
        cp "$build/meson-logs/testlog.txt" "$out/testlog-gpu.txt"
else
    skip_step "gpu tests" "no build"
fi

# ---- 4. compute-sanitizer ------------------------------------------------------------------
san=$(command -v compute-sanitizer)
if [ -z "$san" ] && [ -n "$nvcc_bin" ] && [ -x "$(dirname "$nvcc_bin")/compute-sanitizer" ]; then
    san=$(dirname "$nvcc_bin")/compute-sanitizer
fi
if [ $build_ok != 1 ]; then
    skip_step "memcheck ops" "no build"
elif [ -z "$san" ]; then
    skip_step "memcheck ops" "compute-sanitizer not found"
else
    for t in ops e2e encoders; do
        run_step "memcheck $t" 90 "$bench_reserve" env PG_GPU_QUICK=1 PG_GPU_REQUIRED=1 \
            "$san" --tool memcheck --leak-check full --error-exitcode 1 \
            "$build/tests/test_cuda_$t"
    done
fi

# ---- 5. benchmark --------------------------------------------------------------------------
# The steps, most important first: when the budget runs short the last ones are cut or skipped.
# Estimated times on one H200 host (16 cores, 128 GB, /dev/shm or the page cache), from what each
# step does and rates measured on the 2-core VM: random values cost ~15 ns each per core;
# --same-layers wrote the 2.2 GB 1B file in 1.7 s to /dev/null, 3.7-4.1 s to /dev/shm (0.55
# GB/s), the 13.5 GB 7B in 42.7 s to the VM's disk (0.32 GB/s); the writer's copy and write are
# one thread, ~1.5 GB/s assumed on the host.
#   copy bandwidth + GEMM   ~5 s  CUDA context, 12 copies of 1 GiB, 23 GEMMs
#   encoders PyTorch       ~20 s  import and CUDA init ~6 s, the 5 towers made on the GPU ~4 s,
#                                 2 warm-ups + 20 calls per modality (video 10)
#   encoders ours          ~15 s  the 1.7 GB F16 encoder: 0.85 G values over 16 cores ~1 s,
#                                 written ~2 s; load to the GPU ~2 s; the calls < 2 s
#   ttft 13b ours          ~45 s  the 26 GB F16 13B with --same-layers: 0.65 G values ~1 s, 26 GB
#                                 copied and written ~18 s (~80 s at the VM disk's rate: still
#                                 inside the limit); the encoder ~3 s; load (26 GB of pageable
#                                 copies from the mapped file) ~10 s; 23 turns, 11 pg_embed < 1 s
#   ttft 13b PyTorch       ~30 s  import ~8 s, 13 G fp16 params made on the GPU ~5 s, 36 calls
#   bench 7b f16           ~30 s  13.5 GB (--same-layers) written ~10 s, load ~5 s, the run ~3 s
#   pytorch 7b fp16        ~40 s  import, 6.7 G params made on the GPU, prefill, 128 steps, generate
#   bench 7b q4_0          ~15 s  3.8 GB written ~3 s, load ~2 s, the run ~2 s
# ~200 s in all (bench_reserve). A step is skipped with a SKIP line when less than its minimum
# is left (the 13B's writing and loading alone need about a minute).
bw_GBps="" gemm_T="" bench_log=$(mktemp) torch_log=$(mktemp)
enc_log=$(mktemp) enc_json=$(mktemp) ttft_log=$(mktemp) ttft_torch_log=$(mktemp)
trap 'rm -f "$bench_log" "$torch_log" "$enc_log" "$enc_json" "$ttft_log" "$ttft_torch_log"' EXIT
declare -A ours_pre ours_dec ours_gflops ours_bound

# PG_GPU_CHECK_SMALL=1: tiny models on the CPU, to try the steps without a GPU
if [ "${PG_GPU_CHECK_SMALL:-0}" = 1 ]; then
    dev=cpu llm_7b=tiny llm_13b=tiny enc_preset=tiny torch_dtype=float32
else
    dev=cuda llm_7b=7b llm_13b=13b enc_preset=huge torch_dtype=float16
fi
# bench_step NAME MIN LIMIT RESERVE CMD... — run_step, or SKIP when less than MIN seconds are left
bench_step() {
    local name=$1 min=$2
    shift 2
    if [ "$(left)" -lt "$min" ]; then
        skip_step "$name" "$(left) s left, needs ~$min s"
        return 77
    fi
    run_step "$name" "$@"
}
# model_dir KB — /dev/shm when it has KB free (written and mapped at memory speed instead of the
# disk's), else $TMPDIR or /tmp
model_dir() {
    local shm_kb
    shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
    if [ "${shm_kb:-0}" -gt "$1" ]; then echo /dev/shm; else echo "${TMPDIR:-/tmp}"; fi
}
has_torch=0 has_transformers=0
python3 -c 'import torch' >/dev/null 2>&1 && has_torch=1
python3 -c 'import torch, transformers' >/dev/null 2>&1 && has_transformers=1

if [ $build_ok = 1 ] && [ -x "$build/tests/pandagpt-cuda-bw" ]; then
    step_log=$bench_log run_step "copy bandwidth + cuBLAS GEMM" 40 0 \
        "$build/tests/pandagpt-cuda-bw"
    bw_GBps=$(awk '$1 == "copy_GBps" && $2 > 0 {print $2}' "$bench_log")
    gemm_T=$(awk '$1 == "gemm_f16_TFLOPs" && $2 > 0 {print $2}' "$bench_log")
else
    skip_step "copy bandwidth + cuBLAS GEMM" "no build or no pandagpt-cuda-bw"
fi
bwarg=() gemmarg=()
if [ "${PG_GPU_CHECK_SMALL:-0}" = 1 ] && [ -z "$gemm_T" ]; then
    bw_GBps=20 gemm_T=0.2 # stand-ins of a CPU's, so that the bound columns are tried too
fi
[ -n "$bw_GBps" ] && bwarg=(--bandwidth "$bw_GBps")
[ -n "$gemm_T" ] && gemmarg=(--gemm-tflops "$gemm_T")

# -- the six encoders, F16: PyTorch first, so that ours prints both side by side
mods=image,audio,video,thermal,depth,imu
no_device=""
[ "$dev" = cuda ] && [ -z "$gpu_name" ] && no_device="no GPU"
rm -f "$enc_json"
if [ -n "$no_device" ] || [ $has_torch = 0 ]; then
    skip_step "encoders pytorch $torch_dtype" "${no_device:-python3 cannot import torch}"
else
    bench_step "encoders pytorch $torch_dtype" 20 90 20 env PYTHONUNBUFFERED=1 \
        python3 tools/bench_imagebind_torch.py --device "$dev" --dtype "$torch_dtype" \
        --preset "$enc_preset" --modalities "$mods" -o "$enc_json"
fi
torcharg=()
[ -s "$enc_json" ] && torcharg=(--torch "$enc_json")
if [ $build_ok != 1 ] || [ -n "$no_device" ]; then
    skip_step "encoders f16" "${no_device:-no build}"
else
    step_log=$enc_log bench_step "encoders f16" 15 90 0 "$build/tools/pandagpt-bench-encoders" \
        --device "$dev" --type f16 --preset "$enc_preset" --modalities "$mods" \
        ${gemmarg[@]+"${gemmarg[@]}"} ${torcharg[@]+"${torcharg[@]}"}
fi

# -- time to first token: an image + a question on a random 13B (26 GB F16) with the encoder
if [ $build_ok != 1 ] || [ -n "$no_device" ]; then
    skip_step "ttft $llm_13b f16" "${no_device:-no build}"
else
    dir=$(model_dir 30000000)
    model=$dir/gpu-check-$llm_13b-f16.gguf encoder=$dir/gpu-check-enc-$enc_preset-f16.gguf
    step_log=$ttft_log bench_step "ttft $llm_13b f16" 60 150 0 "$build/tools/pandagpt-bench" \
        --ttft --random "$llm_13b" --type f16 --same-layers --keep "$model" \
        --random-encoder "$enc_preset" --encoder-type f16 --keep-encoder "$encoder" \
        --device "$dev" --reps 10 ${bwarg[@]+"${bwarg[@]}"} ${gemmarg[@]+"${gemmarg[@]}"}
    rm -f "$model" "$encoder"
fi
ttft_n=$(awk '$1 == "ttft_n_prompt" {print $2}' "$ttft_log")
if [ -n "$no_device" ] || [ $has_transformers = 0 ]; then
    skip_step "ttft $llm_13b pytorch" "${no_device:-python3 cannot import torch and transformers}"
else
    step_log=$ttft_torch_log bench_step "ttft $llm_13b pytorch" 30 120 0 env PYTHONUNBUFFERED=1 \
        python3 tools/bench_llama_torch.py --ttft --preset "$llm_13b" --device "$dev" \
        --encoder-preset "$enc_preset" -p "${ttft_n:-29}"
fi

# -- LLaMA-7B, prompt 512 and 128 decode steps: F16, PyTorch's fp16, Q4_0
bench_7b() {
    local ty=$1 model
    if [ $build_ok != 1 ] || [ -n "$no_device" ]; then
        skip_step "bench 7b $ty" "${no_device:-no build}"
        return
    fi
    : >"$bench_log"
    model=$(model_dir 20000000)/gpu-check-$llm_7b-$ty.gguf
    step_log=$bench_log bench_step "bench 7b $ty" 20 150 0 "$build/tools/pandagpt-bench" \
        --random "$llm_7b" --type "$ty" --same-layers --keep "$model" --device "$dev" \
        -p 512 -n 128 ${bwarg[@]+"${bwarg[@]}"}
    rm -f "$model"
    ours_pre[$ty]=$(awk '$1 == "prompt" {print $2}' "$bench_log")
    ours_gflops[$ty]=$(sed -n 's/^prompt .*; \([0-9.]*\) GFLOP\/s.*/\1/p' "$bench_log")
    ours_dec[$ty]=$(awk '$1 == "decode" {print $2}' "$bench_log")
    ours_bound[$ty]=$(awk '$1 == "decode" && $4 == "bound" {print $5}' "$bench_log")
}
bench_7b f16
torch_pre="" torch_dec="" torch_gen=""
if [ -n "$no_device" ] || [ $has_transformers = 0 ]; then
    skip_step "pytorch 7b fp16" "${no_device:-python3 cannot import torch and transformers}"
else
    step_log=$torch_log bench_step "pytorch 7b fp16" 30 150 0 env PYTHONUNBUFFERED=1 \
        python3 tools/bench_llama_torch.py --preset "$llm_7b" --device "$dev" -p 512 -n 128
    torch_pre=$(awk '$1 == "torch_prefill_tok_s" && $2 > 0 {print $2}' "$torch_log")
    torch_dec=$(awk '$1 == "torch_decode_tok_s" && $2 > 0 {print $2}' "$torch_log")
    torch_gen=$(awk '$1 == "torch_generate_decode_tok_s" && $2 > 0 {print $2}' "$torch_log")
fi
bench_7b q4_0

# ---- 6. CPU suites of the same build ---------------------------------------------------------
if [ $build_ok = 1 ]; then
    run_step "cpu tests" 120 0 "${meson[@]}" test -C "$build" --suite cpu --suite api --no-rebuild \
        --print-errorlogs --num-processes "$jobs"
else
    skip_step "cpu tests" "no build"
fi

# ---- summary -------------------------------------------------------------------------------
# fmt X — X with one decimal, or "-" when missing; fmt3 with three.
fmt() { if [ -n "${1:-}" ]; then printf '%.1f' "$1"; else printf -- '-'; fi; }
fmt3() { if [ -n "${1:-}" ]; then printf '%.3f' "$1"; else printf -- '-'; fi; }
# key FILE KEY — the value of a "key value" line of FILE, or nothing.
key() { awk -v k="$2" '$1 == k && $2 != "" {print $2; exit}' "$1" 2>/dev/null; }
# json_ms KEY — PyTorch's seconds for KEY in the encoders' JSON, in ms, or nothing.
json_ms() {
    [ -s "$enc_json" ] || return 0
    sed -n "s/^ *\"$1\": *\([0-9.eE+-]*\).*/\1/p" "$enc_json" |
        awk 'NR == 1 && $1 != "" {printf "%.4f", $1 * 1000}'
}
# target MS LIMIT — "LIMIT ms pass" or "LIMIT ms miss" (MS <= LIMIT), or "-".
target() {
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk -v a="$1" -v t="$2" 'BEGIN { printf "%g ms %s", t, a <= t ? "pass" : "miss" }'
    else
        printf -- '-'
    fi
}
# ratio A B — A/B as "1.23x", or "-" when either is missing (or B is 0).
ratio() {
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) printf "-"; else printf "%.2fx", a / b }'
    else
        printf -- '-'
    fi
}
summary=$(mktemp)
{
    echo
    echo "==== gpu-check summary: $(date -u '+%Y-%m-%d') on ${gpu_name:-no GPU}," \
         "$((SECONDS - t_start)) s ===="
    for s in "${steps[@]}"; do
        IFS='|' read -r n st dt <<<"$s"
        printf '  %-30s %-26s %5s s\n' "$n" "$st" "$dt"
    done
    echo
    echo "  device copy bandwidth (read + write): $(fmt "$bw_GBps") GB/s;" \
         "cuBLAS F16 GEMM 4096x512x4096: $(fmt "$gemm_T") TFLOP/s"
    echo
    echo "  ImageBind-$enc_preset encoders, F16, random weights, ms (best of 20, video 10; PyTorch:"
    echo "  the same towers in $torch_dtype on the same device)"
    printf '  %-14s %9s %11s %10s %9s %10s %12s\n' "" "ours ms" "PyTorch ms" "torch/ours" \
        "floor ms" "ours/floor" "target"
    for m in image audio video thermal depth imu; do
        o=$(key "$enc_log" "enc_${m}_ms") f=$(key "$enc_log" "enc_${m}_floor_ms")
        t=$(json_ms "$m") lim=""
        [ "$m" = image ] && lim=1
        [ "$m" = video ] && lim=10
        printf '  %-14s %9s %11s %10s %9s %10s %12s\n' "$m" "$(fmt3 "$o")" "$(fmt3 "$t")" \
            "$(ratio "$t" "$o")" "$(fmt3 "$f")" "$(ratio "$o" "$f")" "$(target "$o" "$lim")"
    done
    echo "  (audio 3 clips, video 15; floor = FLOP at the cuBLAS F16 rate; target: the issue's)"
    echo
    echo "  Time to first token, random LLaMA-$llm_13b F16 + ImageBind-$enc_preset F16: an image"
    echo "  and \"What is in this image?\" (${ttft_n:-?} prompt positions) through pg_session_chat"
    echo "  with max_tokens 1; PyTorch: transformers $torch_dtype with the same vision tower,"
    echo "  llama_proj and inputs_embeds; best of 10"
    printf '  %-14s %9s %11s %10s %9s %10s %12s\n' "" "ours ms" "PyTorch ms" "torch/ours" \
        "bound ms" "ours/bound" "target"
    tl=$ttft_log pl=$ttft_torch_log
    for row in "first token|ttft_ms|torch_ttft_ms|ttft_bound_ms|15" \
               "prefill|ttft_prompt_ms|torch_ttft_prefill_ms|ttft_weights_ms|" \
               "image alone|ttft_embed_ms|torch_ttft_image_ms|ttft_image_floor_ms|"; do
        IFS='|' read -r name ko kt kb lim <<<"$row"
        o=$(key "$tl" "$ko") t=$(key "$pl" "$kt") b=$(key "$tl" "$kb")
        printf '  %-14s %9s %11s %10s %9s %10s %12s\n' "$name" "$(fmt3 "$o")" "$(fmt3 "$t")" \
            "$(ratio "$t" "$o")" "$(fmt3 "$b")" "$(ratio "$o" "$b")" "$(target "$o" "$lim")"
    done
    echo "  (bounds: first token = LLM weight bytes / copy bandwidth + the image's FLOP floor;"
    echo "   prefill = the weights' part (ours: pg_timings.prompt_ms, which on CUDA also waits for"
    echo "   the encode still queued; PyTorch: token ids only); image = its FLOP floor)"
    echo
    echo "  LLaMA-7B, random weights, prompt 512 then 128 decode steps (PyTorch: transformers fp16)"
    printf '  %-22s %12s %14s %10s %14s\n' "" "ours tok/s" "PyTorch tok/s" "ours/torch" \
        "bound tok/s"
    for ty in f16 q4_0; do
        tname=$(echo "$ty" | tr '[:lower:]' '[:upper:]')
        pb=""
        if [ -n "$gemm_T" ] && [ -n "${ours_gflops[$ty]:-}" ] && [ -n "${ours_pre[$ty]:-}" ]; then
            # 2·params·tokens at the GEMM rate: tok/s × (GEMM rate / our FLOP rate)
            pb=$(awk -v t="${ours_pre[$ty]}" -v g="$gemm_T" -v f="${ours_gflops[$ty]}" \
                 'BEGIN { if (f > 0) printf "%.1f", t * g * 1000 / f }')
        fi
        printf '  %-22s %12s %14s %10s %14s\n' "prefill $tname" "$(fmt "${ours_pre[$ty]:-}")" \
            "$(fmt "$torch_pre")" "$(ratio "${ours_pre[$ty]:-}" "$torch_pre")" "$(fmt "$pb")"
        printf '  %-22s %12s %14s %10s %14s\n' "decode $tname" "$(fmt "${ours_dec[$ty]:-}")" \
            "$(fmt "$torch_dec")" "$(ratio "${ours_dec[$ty]:-}" "$torch_dec")" \
            "$(fmt "${ours_bound[$ty]:-}")"
    done
    echo "  (PyTorch is fp16 in both rows; its generate() decodes at $(fmt "$torch_gen") tok/s."
    echo "   Bounds: prefill = cuBLAS F16 GEMM rate / 2·params per token; decode = copy bandwidth /"
    echo "   weight bytes per token.)"
    if [ $failed = 0 ]; then
        echo "  result: every step passed or skipped"
    else
        echo "  result: FAILED"
    fi
} >"$summary"
cat "$summary"
[ -n "$out" ] && cp "$summary" "$out/gpu-check.txt" && chmod 644 "$out/gpu-check.txt"
rm -f "$summary"
if [ -n "$tee_pid" ]; then # let tee write the log's end before the device tool collects it
    exec >&- 2>&-
    wait "$tee_pid" 2>/dev/null
fi
exit $failed
