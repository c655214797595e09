#!/usr/bin/env bash
# gpu-check.sh — everything the CUDA backend must show on a real GPU, in one run of under
# 8 minutes on one H200 (the project brief: run it first whenever a session has a device).
#
#   1. versions    nvidia-smi, nvcc (and no GPU: say so and exit 77, nothing else is run)
#   2. build       a fresh build dir, CUDA enabled for sm_90 only, every media library disabled
#                  (the device machine has none and installs nothing)
#   3. gpu tests   meson test --suite gpu: tests/gpu/test_cuda_ops (every op, CUDA vs CPU, NMSE)
#                  and tests/gpu/test_cuda_e2e (models on CUDA vs CPU, the pandagpt-e2e case,
#                  ImageBind, out of device memory, leaks), PG_GPU_REQUIRED=1 so none may skip
#   4. sanitizer   both GPU tests once under compute-sanitizer --tool memcheck (PG_GPU_QUICK=1:
#                  reduced shapes, sanitized kernels run far slower)
#   5. benchmark   pandagpt-cuda-bw (device copy bandwidth, cuBLAS F16 GEMM rate), then
#                  pandagpt-bench --random 7b --device cuda -p 512 -n 128 for F16 and Q4_0, and
#                  tools/bench_llama_torch.py: the same work in PyTorch fp16 (transformers
#                  LlamaForCausalLM, random weights) on the same GPU; a table of ours, PyTorch,
#                  the ratio and the bound (decode: weight bytes / copy bandwidth; prefill: the
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
# a machine still warm), PG_GPU_CHECK_FORCE=1 (go on without a GPU: to try the script itself).
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
        cp "$c/case.json" "$c/row.npy" "$c/logits_last.npy" \
            "$dst/reference/pandagpt-e2e/cases/$name/"
    done
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
else
    echo "pandagpt-e2e: no .gpu-check/ (scripts/gpu-check.sh --prepare): that part may skip"
fi

# ---- 2. build ------------------------------------------------------------------------------
# Time kept for the later steps: the benchmark (~200 s: two 7B models written, loaded and run,
# and PyTorch's) and the tests before it.
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
    for t in ops e2e; do
        run_step "memcheck $t" 90 "$bench_reserve" env PG_GPU_QUICK=1 PG_GPU_REQUIRED=1 \
            "$san" --tool memcheck --leak-check full --error-exitcode 1 \
            "$build/tests/test_cuda_$t"
    done
fi

# ---- 5. benchmark --------------------------------------------------------------------------
bw_GBps="" gemm_T="" bench_log=$(mktemp) torch_log=$(mktemp)
trap 'rm -f "$bench_log" "$torch_log"' EXIT
declare -A ours_pre ours_dec ours_gflops ours_bound
if [ $build_ok = 1 ] && [ -x "$build/tests/pandagpt-cuda-bw" ]; then
    step_log=$bench_log run_step "copy bandwidth + cuBLAS GEMM" 40 180 \
        "$build/tests/pandagpt-cuda-bw"
    bw_GBps=$(awk '$1 == "copy_GBps" && $2 > 0 {print $2}' "$bench_log")
    gemm_T=$(awk '$1 == "gemm_f16_TFLOPs" && $2 > 0 {print $2}' "$bench_log")
else
    skip_step "copy bandwidth + cuBLAS GEMM" "no build or no pandagpt-cuda-bw"
fi
# The 7B files (13.5 GB F16, 3.8 GB Q4_0) go to /dev/shm when it has room: written and mapped
# at memory speed instead of the disk's.
model_dir=${TMPDIR:-/tmp}
shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
[ "${shm_kb:-0}" -gt 20000000 ] && model_dir=/dev/shm
for ty in f16 q4_0; do
    if [ $build_ok != 1 ]; then
        skip_step "bench 7b $ty" "no build"
        continue
    fi
    bwarg=()
    [ -n "$bw_GBps" ] && bwarg=(--bandwidth "$bw_GBps")
    : >"$bench_log"
    # F16 leaves time for Q4_0 and PyTorch, Q4_0 for PyTorch
    reserve=60
    [ "$ty" = f16 ] && reserve=120
    model=$model_dir/gpu-check-7b-$ty.gguf
    step_log=$bench_log run_step "bench 7b $ty" 150 "$reserve" "$build/tools/pandagpt-bench" \
        --random 7b --type "$ty" --keep "$model" --device cuda -p 512 -n 128 \
        ${bwarg[@]+"${bwarg[@]}"}
    rm -f "$model"
    ours_pre[$ty]=$(awk '$1 == "prompt" {print $2}' "$bench_log")
    ours_gflops[$ty]=$(sed -n 's/^prompt .*; \([0-9.]*\) GFLOP\/s.*/\1/p' "$bench_log")
    ours_dec[$ty]=$(awk '$1 == "decode" {print $2}' "$bench_log")
    ours_bound[$ty]=$(awk '$1 == "decode" && $4 == "bound" {print $5}' "$bench_log")
done
torch_pre="" torch_dec="" torch_gen=""
if python3 -c 'import torch, transformers' >/dev/null 2>&1; then
    step_log=$torch_log run_step "pytorch 7b fp16" 150 0 env PYTHONUNBUFFERED=1 \
        python3 tools/bench_llama_torch.py --preset 7b -p 512 -n 128
    torch_pre=$(awk '$1 == "torch_prefill_tok_s" && $2 > 0 {print $2}' "$torch_log")
    torch_dec=$(awk '$1 == "torch_decode_tok_s" && $2 > 0 {print $2}' "$torch_log")
    torch_gen=$(awk '$1 == "torch_generate_decode_tok_s" && $2 > 0 {print $2}' "$torch_log")
else
    skip_step "pytorch 7b fp16" "python3 cannot import torch and transformers"
fi

# ---- 6. CPU suites of the same build ---------------------------------------------------------
if [ $build_ok = 1 ]; then
    run_step "cpu tests" 120 0 "${meson[@]}" test -C "$build" --suite cpu --suite api --no-rebuild \
        --print-errorlogs --num-processes "$jobs"
else
    skip_step "cpu tests" "no build"
fi

# ---- summary -------------------------------------------------------------------------------
# fmt X — X with one decimal, or "-" when missing.
fmt() { if [ -n "${1:-}" ]; then printf '%.1f' "$1"; else printf -- '-'; fi; }
# ratio A B — A/B as "1.23x", or "-" when either is missing.
ratio() {
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
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
