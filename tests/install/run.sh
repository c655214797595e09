#!/bin/sh
# tests/install/run.sh <builddir> <c-file> [args...]
#
# Installs the build into a temporary staging directory (meson install --destdir), builds one C
# program against the staged libpandagpt twice — with pkg-config alone, and as a CMake project
# (tests/install/CMakeLists.txt: find_package(pandagpt 0.1 REQUIRED), pandagpt::pandagpt) — and
# runs both with the staged library, passing them args. Each program must exit 0; its stdout and
# stderr pass through. Nothing of the build tree is used but the installed files.
#
# Also checked: the CMake package's version file accepts and refuses the right requests
# (check_version.cmake), the CMake build found the staged package (not another install), and
# both programs record libpandagpt's SONAME as NEEDED and load the staged library.
#
# Without cmake on PATH the CMake half is skipped with a note (CI installs cmake).
# The demo picture is a PNG: a build without libpng answers PG_ERR_UNSUPPORTED for it, and a
# program given it then fails (exit 1) — this script does not excuse that; build with libpng.
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 <builddir> <c-file> [args...]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "$1" && pwd)
src=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2
[ -f "$src" ] || { echo "install test: no such C file: $src" >&2; exit 2; }
name=$(basename "$src" .c)

stage=$(mktemp -d "${TMPDIR:-/tmp}/pandagpt-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM

meson install -C "$builddir" --destdir "$stage/root" --quiet >/dev/null
pc=$(find "$stage/root" -name pandagpt.pc | head -n 1)
[ -n "$pc" ] || { echo "install test: no pandagpt.pc installed under $stage/root" >&2; exit 1; }
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
# The staged prefix: the configured prefix below the staging directory.
prefix=$stage/root$(PKG_CONFIG_LIBDIR="$pcdir" pkg-config --variable=prefix pandagpt)
[ -d "$prefix" ] || { echo "install test: staged prefix $prefix missing" >&2; exit 1; }

# Runs one built program: the staged library only, NEEDED libpandagpt.so.0, exit status 0.
run_program() {
  kind=$1 exe=$2; shift 2
  needed=$(readelf -d "$exe" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(libpandagpt[^]]*\)\].*/\1/p')
  if [ "$needed" != "libpandagpt.so.0" ]; then
    echo "install test ($kind): $exe needs '$needed', expected libpandagpt.so.0" >&2
    return 1
  fi
  loaded=$(LD_LIBRARY_PATH="$libdir" ldd "$exe" |
           sed -n 's/.*libpandagpt\.so\.0 => \([^ ]*\).*/\1/p')
  case "$loaded" in
    "$libdir"/*) ;;
    *) echo "install test ($kind): $exe would load libpandagpt from '$loaded', not $libdir" >&2
       return 1 ;;
  esac
  echo "install test ($kind): $name${*:+ $*}"
  status=0
  LD_LIBRARY_PATH="$libdir" "$exe" "$@" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "install test ($kind): $name exited with status $status" >&2
    return 1
  fi
}

# 1. pkg-config alone: PKG_CONFIG_LIBDIR makes the staged pandagpt.pc the only one it sees, and
# the sysroot puts the staging directory before its -I and -L paths.
cflags_libs=$(PKG_CONFIG_SYSROOT_DIR="$stage/root" PKG_CONFIG_LIBDIR="$pcdir" \
              pkg-config --cflags --libs pandagpt)
# shellcheck disable=SC2086 # word splitting of the pkg-config flags is intended
${CC:-cc} -std=c11 -Wall -Werror "$src" $cflags_libs -o "$stage/$name-pkgconfig"
run_program pkg-config "$stage/$name-pkgconfig" "$@"

# 2. CMake: find_package through CMAKE_PREFIX_PATH pointing into the staging directory.
if ! command -v cmake >/dev/null 2>&1; then
  echo "install test (cmake): SKIPPED — cmake is not installed, the CMake package is untested"
  exit 0
fi
config=$(find "$stage/root" -name pandagpt-config-version.cmake | head -n 1)
[ -n "$config" ] || { echo "install test: no pandagpt-config-version.cmake installed" >&2; exit 1; }
cmake -DVERSION_FILE="$config" -P "$here/check_version.cmake"
cmake -S "$here" -B "$stage/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DPG_PROGRAM_SOURCE="$src" -DPG_PROGRAM_NAME="$name" -DPG_EXPECTED_PREFIX="$stage/root" \
      -DCMAKE_BUILD_TYPE=Release >"$stage/cmake.log" 2>&1 ||
  { cat "$stage/cmake.log" >&2; echo "install test (cmake): configure failed" >&2; exit 1; }
cmake --build "$stage/cmake-build" >>"$stage/cmake.log" 2>&1 ||
  { cat "$stage/cmake.log" >&2; echo "install test (cmake): build failed" >&2; exit 1; }
grep '^-- pandagpt ' "$stage/cmake.log" | sed "s|$stage|<stage>|g"
run_program cmake "$stage/cmake-build/$name" "$@"
