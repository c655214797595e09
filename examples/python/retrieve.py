#!/usr/bin/env python3
# examples/python/retrieve.py — cross-modal retrieval with ImageBind: embed files of any
# modality and rank them against a query file by cosine similarity.
#
#   python3 retrieve.py -e imagebind.gguf --query cat.jpg meow.wav bark.wav street.mp4 dog.png
#
# Prints one line per file, best first: rank, cosine similarity, modality, path. The modality of
# each file comes from its extension (pandagpt.EXTENSION_MODALITY); only the encoder is loaded.
"""Rank files of any modality against a query file by ImageBind cosine similarity."""
from __future__ import annotations

import argparse
import sys
from typing import List

import numpy as np

import pandagpt


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-e", "--encoder", required=True, help="ImageBind encoder GGUF")
    ap.add_argument("-q", "--query", required=True, help="the file to search with")
    ap.add_argument("files", nargs="+", help="the files to rank")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = ap.parse_args(argv)

    with pandagpt.Model(None, encoder=args.encoder, device=args.device) as model:
        def unit(path: str) -> "tuple[np.ndarray, str]":
            with pandagpt.Media.load(path) as media:
                v = model.embed(media).astype(np.float64)
                return v / np.linalg.norm(v), media.modality.name.lower()

        query, _ = unit(args.query)
        scored = []
        for path in args.files:
            vec, modality = unit(path)
            scored.append((float(vec @ query), modality, path))
    scored.sort(key=lambda s: -s[0])
    for rank, (sim, modality, path) in enumerate(scored, 1):
        print(f"{rank:3d}  {sim:+.4f}  {modality:<7} {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except pandagpt.PandaGPTError as e:
        print(f"retrieve.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3 if isinstance(e, pandagpt.UnsupportedError) else 1)
