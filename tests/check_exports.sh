#!/bin/sh
# Fails when libpandagpt exports any dynamic symbol that is not pg_* (the ABI is pg_* only), or
# needs a CUDA library to load.
lib="$1"
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^$')
[ -n "$syms" ] || { echo "no exported symbols found in $lib"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^pg_' || true)
if [ -n "$bad" ]; then
  echo "symbols exported that are not pg_*:"; printf '%s\n' "$bad"; exit 1
fi
echo "exports: $(printf '%s\n' "$syms" | wc -l) symbols, all pg_*"
# A CUDA build links the runtime statically and opens cuBLAS at run time: loading the library
# must not need either (CPU users of a CUDA build, machines without the toolkit).
cuda=$(readelf -d "$lib" | grep NEEDED | grep -E 'libcudart|libcublas' || true)
if [ -n "$cuda" ]; then
  echo "the library needs CUDA libraries to load:"; printf '%s\n' "$cuda"; exit 1
fi
echo "needed: no CUDA library"
