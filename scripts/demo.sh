#!/bin/sh
# README command 1: build libpandagpt, make the demo model (random weights, our own vocabulary)
# and chat with it. No download. Usage: scripts/demo.sh ["your question"]
set -eu
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build" >/dev/null
[ -f "$build/demo/demo-llm.gguf" ] || "$build/tools/pandagpt-make-demo" "$build/demo"
question=${1:-"What is in this image?"}
echo "### Human: $question"
printf '### Assistant: '
"$build/examples/pandagpt-cli" -m "$build/demo/demo-llm.gguf" -p "$question" -n 64
echo "(The demo model has random weights: its answer is noise. See README for real weights.)"
