#!/bin/sh
# README command 2: every test, twice — an optimised build, then ASan + UBSan.
# Tests that need ../shared/reference find it through PG_REFERENCE_DIR and skip without it.
set -eu
cd "$(dirname "$0")/.."
export PG_REFERENCE_DIR="${PG_REFERENCE_DIR:-$(pwd)/../shared/reference}"

[ -f build-test/build.ninja ] || meson setup build-test --buildtype=debugoptimized
meson compile -C build-test
meson test -C build-test --print-errorlogs --num-processes 2

# Install into a temporary prefix; build a program against it with pkg-config and with CMake
# (find_package; skipped with a note where cmake is missing) and run both (tests/install/run.sh):
# the consumer check, then examples/simple.c on the demo model and picture (a PNG: this needs a
# build with libpng, which CI has; without it simple fails with PG_ERR_UNSUPPORTED).
sh tests/install/run.sh build-test tests/install/consumer.c
meson compile -C build-test demo-assets
sh tests/install/run.sh build-test examples/simple.c build-test/tools/demo-llm.gguf \
    build-test/tools/demo-encoder.gguf build-test/tools/demo.png "What is in this picture?"

# Sanitizers: the CUDA kernels are left out (nvcc does not take -fsanitize).
[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Dcuda=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 4
echo "all tests passed (optimised and ASan+UBSan)"
