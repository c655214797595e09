#!/bin/sh
# README command 2: every test, twice — an optimised build, then ASan + UBSan.
# Tests that need ../shared/reference find it through PG_REFERENCE_DIR and skip without it.
set -eu
cd "$(dirname "$0")/.."
export PG_REFERENCE_DIR="${PG_REFERENCE_DIR:-$(pwd)/../shared/reference}"

[ -f build-test/build.ninja ] || meson setup build-test --buildtype=debugoptimized
meson compile -C build-test
meson test -C build-test --print-errorlogs --num-processes 2

# Install into a temporary prefix and build a consumer with pkg-config alone.
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
meson install -C build-test --destdir "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name pandagpt.pc | head -n 1)")
libdir=$(dirname "$pcdir")
PKG_CONFIG_SYSROOT_DIR="$prefix" PKG_CONFIG_PATH="$pcdir" \
    sh -c 'cc -std=c99 -Wall -Werror tests/install/consumer.c $(pkg-config --cflags --libs pandagpt) -o "$0/consumer"' "$prefix"
LD_LIBRARY_PATH="$libdir" "$prefix/consumer"

# Sanitizers: the CUDA kernels are left out (nvcc does not take -fsanitize).
[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Dcuda=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 4
echo "all tests passed (optimised and ASan+UBSan)"
