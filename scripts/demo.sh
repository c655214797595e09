#!/bin/sh
# README command 1: build libpandagpt, make the demo models (random weights, our own vocabulary),
# a picture and a sound, then chat with the model — about text, then about the picture and the
# sound — and compare the media's embeddings. No download.
# Usage: scripts/demo.sh ["your question"]        (BUILD_DIR picks the build directory)
set -eu
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build" >/dev/null
demo=$build/demo
for f in demo-llm.gguf demo-encoder.gguf demo.png demo.wav; do
    if [ ! -f "$demo/$f" ]; then
        "$build/tools/pandagpt-make-demo" "$demo"
        break
    fi
done
cli=$build/examples/pandagpt-cli
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs the CLI; its notes on stderr (load time, model facts, timings, errors) follow its output,
# indented, instead of cutting into the answer.
run_cli() {
    cli_rc=0
    "$cli" "$@" 2>"$log" || cli_rc=$?
    [ "$cli_rc" -eq 0 ] || echo
    sed 's/^/    /' "$log" >&2
    return "$cli_rc"
}

question=${1:-"Tell me about pandas."}
echo
echo "### Human: $question"
printf '### Assistant: '
run_cli -m "$demo/demo-llm.gguf" -p "$question" -n 64

# The picture needs libpng in the build, the sound libsndfile: `meson setup` lists them under
# "Features"; a build without one answers PG_ERR_UNSUPPORTED, which the CLI exits with as 3.
mm_question="What do you see and hear?"
text_only() {
    echo "note: $1;"
    echo "      so the chat goes on without media (install the development packages, run"
    echo "      'meson setup --reconfigure $build', then this script again)"
    echo
    echo "### Human: $mm_question"
    printf '### Assistant: '
    run_cli -m "$demo/demo-llm.gguf" -p "$mm_question" -n 48
}
missing=
deps=$(meson introspect --dependencies "$build" 2>/dev/null || true)
for lib in libpng sndfile; do
    case $deps in *\"$lib\"*) ;; *) missing="${missing:+$missing and }$lib" ;; esac
done

echo
if [ -n "$missing" ]; then
    text_only "this build was set up without $missing (see 'Features' in the output of
      meson setup), which demo.png and demo.wav need"
else
    echo "### Human: <Img>demo.png + demo.wav</Img> $mm_question"
    printf '### Assistant: '
    rc=0
    run_cli -m "$demo/demo-llm.gguf" -e "$demo/demo-encoder.gguf" \
        --image "$demo/demo.png" --audio "$demo/demo.wav" -p "$mm_question" -n 48 || rc=$?
    if [ "$rc" -eq 3 ]; then
        echo
        text_only "this build cannot decode the demo's media (PG_ERR_UNSUPPORTED above)"
    elif [ "$rc" -ne 0 ]; then
        exit "$rc"
    else
        echo
        echo "ImageBind embeddings of the two and their cosine similarity:"
        run_cli embed -e "$demo/demo-encoder.gguf" --image "$demo/demo.png" --audio "$demo/demo.wav"
    fi
fi
echo
echo "(The demo models have random weights: their answers and similarities are noise. See README for real weights.)"
