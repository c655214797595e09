#!/usr/bin/env python3
# examples/python/chat.py — chat with PandaGPT from Python, the answer streamed as it is made.
#
#   python3 chat.py -m vicuna.gguf -e imagebind.gguf --image cat.jpg -p "What is in the picture?"
#   python3 chat.py -m vicuna.gguf                  (interactive: one line = one turn, /reset)
#
# The media given on the command line go into the first turn, as in PandaGPT's demo; later turns
# reuse them. Ctrl-C stops an answer (the conversation goes on); at the prompt it exits.
# Needs the pandagpt package (bindings/python) and libpandagpt (PANDAGPT_LIBRARY, pkg-config or
# the system loader).
"""Stream a PandaGPT chat about optional images, audio or video given on the command line."""
from __future__ import annotations

import argparse
import sys
from typing import List

import pandagpt


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-m", "--model", required=True, help="LLaMA/Vicuna GGUF")
    ap.add_argument("-e", "--encoder", help="ImageBind + llama_proj GGUF (needed with media)")
    ap.add_argument("--image", action="append", default=[], help="JPEG/PNG (repeatable)")
    ap.add_argument("--audio", action="append", default=[], help="WAV/FLAC/... (repeatable)")
    ap.add_argument("--video", action="append", default=[], help="any FFmpeg video")
    ap.add_argument("-p", "--prompt", help="answer this once and exit (default: interactive)")
    ap.add_argument("-n", "--max-tokens", type=int, default=256)
    ap.add_argument("--temp", type=float, default=1.0, help="0 = greedy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = ap.parse_args(argv)

    media = [pandagpt.Media.load(path, modality=mod)
             for mod, paths in (("image", args.image), ("audio", args.audio),
                                ("video", args.video)) for path in paths]
    sampling = dict(max_tokens=args.max_tokens, temperature=args.temp, seed=args.seed)
    with pandagpt.Model(args.model, encoder=args.encoder, device=args.device) as model, \
            pandagpt.Session(model) as session:
        print(f"libpandagpt {pandagpt.version()}: n_vocab {model.n_vocab}, n_embd "
              f"{model.n_embd}, n_ctx {session.n_ctx}", file=sys.stderr)
        turns = [args.prompt] if args.prompt is not None else None
        first = True
        while True:
            if turns is not None:
                if not turns:
                    return 0
                question = turns.pop()
            else:
                try:
                    question = input("> ")
                except (EOFError, KeyboardInterrupt):
                    print(file=sys.stderr)
                    return 0
                if question.strip() == "/reset":
                    session.reset()
                    first = True
                    continue
            try:
                for piece in session.chat(question, media=media if first else None,
                                          **sampling):
                    print(piece, end="", flush=True)
                first = False
            except KeyboardInterrupt:
                print(" [stopped]", end="", file=sys.stderr)
            print()
            t = session.timings
            print(f"[prompt {t.n_prompt} tokens ({t.n_reused} reused) in {t.prompt_ms:.1f} ms, "
                  f"{t.n_generated} generated in {t.decode_ms:.1f} ms]", file=sys.stderr)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except pandagpt.PandaGPTError as e:
        print(f"chat.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3 if isinstance(e, pandagpt.UnsupportedError) else 1)
