#!/bin/sh
# Fails when libpandagpt exports any dynamic symbol that is not pg_* (the ABI is pg_* only).
lib="$1"
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^$')
[ -n "$syms" ] || { echo "no exported symbols found in $lib"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^pg_' || true)
if [ -n "$bad" ]; then
  echo "symbols exported that are not pg_*:"; printf '%s\n' "$bad"; exit 1
fi
echo "exports: $(printf '%s\n' "$syms" | wc -l) symbols, all pg_*"
