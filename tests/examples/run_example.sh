#!/bin/sh
# run_example.sh — runs one of the example programs (examples/) on the demo model and checks what
# it prints, so that the examples never rot. examples/meson.build registers one test per case.
#
#   run_example.sh CASE EXE DEMO-LLM.gguf DEMO-ENCODER.gguf DEMO.png DEMO.wav
#   CASE: simple, simple-errors, retrieve, retrieve-errors, chat, chat-errors
#
# Exit status: 0 passed, 1 failed (saying what was expected and showing the program's output),
# 77 skipped: the build lacks libpng or libsndfile, so the example reports PG_ERR_UNSUPPORTED for
# the demo media (meson setup lists the libraries under "Features").
set -u
case_name=$1 exe=$2 llm=$3 enc=$4 png=$5 wav=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/stdout err=$tmp/stderr

fail() {
    echo "FAIL ($case_name): $*"
    echo "--- command: $last_cmd (exit $rc)"
    echo "--- stdout:"; cat "$out"
    echo "--- stderr:"; cat "$err"
    exit 1
}

# run CMD...: runs it with stdout and stderr captured; rc gets the exit status.
run() {
    last_cmd=$*
    rc=0
    "$@" >"$out" 2>"$err" </dev/null || rc=$?
}

skip_if_unsupported() {
    if grep -q PG_ERR_UNSUPPORTED "$err"; then
        echo "SKIP ($case_name): this build cannot decode the demo media; rebuild with libpng" \
             "and libsndfile (see 'Features' in meson setup's output):"
        grep PG_ERR_UNSUPPORTED "$err" | head -n 3
        exit 77
    fi
}

# expect_ok: exit 0 and some text on stdout.
expect_ok() {
    [ "$rc" -eq 0 ] || { skip_if_unsupported; fail "expected exit 0"; }
    grep -q '[^[:space:]]' "$out" || fail "expected an answer on stdout, got nothing"
}

# expect_error STATUS TEXT: that exit status, TEXT (a file name) in the message on stderr. (A
# build without the decoders fails on the demo media first: skipped.)
expect_error() {
    [ "$rc" -eq "$1" ] || { skip_if_unsupported; fail "expected exit $1"; }
    grep -qF -- "$2" "$err" || { skip_if_unsupported; fail "expected the error message to name $2"; }
}

# Similarity of the line for PATH in retrieve's output, or nothing when it is not listed.
similarity_of() {
    awk -v p="$1" '$3 == p { print $1 }' "$out"
}

case $case_name in
simple)
    run "$exe" "$llm" "$enc" "$png" "What is in this image?"
    expect_ok
    run "$exe" "$llm" "$enc" "$png" # the default question
    expect_ok
    ;;
simple-errors)
    run "$exe" "$llm" "$enc" "$tmp/missing.png"
    expect_error 1 "$tmp/missing.png"
    [ -s "$out" ] && fail "expected nothing on stdout"
    run "$exe" "$tmp/missing-llm.gguf" "$enc" "$png"
    expect_error 1 "$tmp/missing-llm.gguf"
    run "$exe" "$llm" "$tmp/missing-encoder.gguf" "$png"
    expect_error 1 "$tmp/missing-encoder.gguf"
    run "$exe" "$llm" "$enc"
    expect_error 2 "usage"
    ;;
retrieve)
    dir=$tmp/media
    mkdir "$dir" "$dir/subfolder"
    cp "$png" "$dir/a-query.png"
    cp "$png" "$dir/b-copy.png"              # the same picture under another name
    cp "$png" "$dir/c-sky.thermal.png"       # the same file read as a thermal image
    cp "$wav" "$dir/d-birds.wav"
    echo "not media" >"$dir/notes.txt"
    run "$exe" "$enc" "$dir/a-query.png" "$dir"
    [ "$rc" -eq 0 ] || { skip_if_unsupported; fail "expected exit 0"; }
    first=$(head -n 1 "$out")
    [ "$(echo "$first" | awk '{ print $2, $3 }')" = "image $dir/a-query.png" ] ||
        fail "expected the query itself first, as an image"
    for f in a-query.png b-copy.png; do
        s=$(similarity_of "$dir/$f")
        awk -v s="$s" 'BEGIN { exit !(s != "" && s - 1 <= 1e-4 && 1 - s <= 1e-4) }' ||
            fail "expected similarity 1.0000 (± 1e-4) for $f, got '$s'"
    done
    [ "$(awk -v p="$dir/c-sky.thermal.png" '$3 == p { print $2 }' "$out")" = thermal ] ||
        fail "expected c-sky.thermal.png listed as thermal"
    grep -q "notes.txt" "$err" || fail "expected a note about notes.txt on stderr"
    grep -q "subfolder" "$out" && fail "expected the subfolder not to be listed"
    # best first; every similarity a number in [-1, 1]
    awk 'NR > 1 && $1 > prev + 1e-9 { bad = 1 } { prev = $1 }
         !($1 >= -1.0001 && $1 <= 1.0001) { bad = 1 } END { exit bad }' "$out" ||
        fail "expected similarities in [-1, 1], best first"
    # the same run again gives the same output, byte for byte
    cp "$out" "$tmp/first-run"
    run "$exe" "$enc" "$dir/a-query.png" "$dir"
    cmp -s "$out" "$tmp/first-run" || fail "expected the same output on a second run"
    # a query outside the folder: its two copies tie at 1.0000 and come by name
    run "$exe" "$enc" "$png" "$dir"
    [ "$rc" -eq 0 ] || fail "expected exit 0 with a query outside the folder"
    [ "$(head -n 2 "$out" | awk '{ printf "%s %s;", $1, $3 }')" = \
      "1.0000 $dir/a-query.png;1.0000 $dir/b-copy.png;" ] ||
        fail "expected the two copies of the query first, by name"
    if [ -z "$(similarity_of "$dir/d-birds.wav")" ]; then
        skip_if_unsupported
        fail "expected d-birds.wav listed as audio"
    fi
    [ "$(wc -l <"$out")" -eq 4 ] || fail "expected 4 files listed"
    ;;
retrieve-errors)
    dir=$tmp/media
    mkdir "$dir"
    cp "$png" "$dir/a-query.png"
    run "$exe" "$enc" "$tmp/missing.png" "$dir"
    expect_error 1 "$tmp/missing.png"
    [ -s "$out" ] && fail "expected nothing on stdout"
    run "$exe" "$enc" "$dir/a-query.png" "$tmp/missing-folder"
    expect_error 1 "$tmp/missing-folder"
    run "$exe" "$tmp/missing-encoder.gguf" "$dir/a-query.png" "$dir"
    expect_error 1 "$tmp/missing-encoder.gguf"
    # a file that cannot be decoded: reported and skipped; the others are still ranked
    echo "not a picture" >"$dir/b-broken.png"
    run "$exe" "$enc" "$dir/a-query.png" "$dir"
    expect_error 1 "$dir/b-broken.png"
    grep -q "a-query.png" "$out" || fail "expected the readable file still ranked"
    grep -q "b-broken.png" "$out" && fail "expected b-broken.png not to be ranked"
    run "$exe" "$enc" "$dir/a-query.png"
    expect_error 2 "usage"
    ;;
chat)
    run "$exe" "$llm" "Tell me about pandas."
    expect_ok
    run "$exe" "$llm" --encoder "$enc" --image "$png" --audio "$wav" "What do you see and hear?"
    expect_ok
    # no question: one turn per line of stdin
    last_cmd="printf 'Hello!\\nTell me more.\\n' | $exe $llm --encoder $enc --image $png"
    rc=0
    printf 'Hello!\nTell me more.\n' | "$exe" "$llm" --encoder "$enc" --image "$png" \
        >"$out" 2>"$err" || rc=$?
    expect_ok
    ;;
chat-errors)
    run "$exe" "$tmp/missing-llm.gguf" "Hello?"
    expect_error 1 "$tmp/missing-llm.gguf"
    run "$exe" "$llm" --encoder "$enc" --image "$tmp/missing.png" "Hello?"
    expect_error 1 "$tmp/missing.png"
    [ -s "$out" ] && fail "expected nothing on stdout"
    run "$exe" "$llm" --image "$png" "Hello?"
    expect_error 2 "--encoder"
    ;;
*)
    echo "run_example.sh: unknown case $case_name" >&2
    exit 2
    ;;
esac
echo "ok ($case_name)"
