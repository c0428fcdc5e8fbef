#!/usr/bin/env python3
"""Count how often each token id occurs in a training corpus and write the model directory's
token_frequencies.bin (format: spec/model-directory.md "token_frequencies.bin").

The engine ranks ids by these counts to build a draft vocabulary (spec/decoding.md "Draft
vocabulary", FR-Spec): the MTP draft head is computed over the N most frequent ids only. Counts
come from the training split, never from the held-out text the shipped datasets are drawn from,
so the ranking does not peek at the evaluation prompts.

Input: a raw little-endian uint16 token file (data/tokens/train.bin, meta.json "dtype": "uint16"),
the layout training/train.py reads. Standard library only, so it runs without the training venv.

Usage:
  python3 training/token_frequencies.py --tokens /work/main/data/tokens/train.bin \
      --vocab-size 4096 --out models/mtp-mini/token_frequencies.bin
"""
import argparse
import array
import os
import struct
import sys

MAGIC = b"MTPFREQ1"
HEADER = struct.Struct("<8sIIQ")  # magic, vocab_size, reserved (0), total count


def count_tokens(path, vocab_size):
    """Counts [vocab_size] of the uint16 ids in PATH; an id >= vocab_size is an error."""
    size = os.path.getsize(path)
    if size % 2:
        sys.exit(f"{path}: {size} bytes is not a whole number of uint16 tokens")
    counts = [0] * vocab_size
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            ids = array.array("H")
            ids.frombytes(chunk)
            if sys.byteorder != "little":
                ids.byteswap()
            for i in ids:
                if i >= vocab_size:
                    sys.exit(f"{path}: token id {i} >= vocab_size {vocab_size}")
                counts[i] += 1
    return counts


def write_file(out, counts):
    """Write the header and one uint64 count per id, atomically (temp file, then rename)."""
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(HEADER.pack(MAGIC, len(counts), 0, sum(counts)))
        f.write(struct.pack(f"<{len(counts)}Q", *counts))
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", required=True, help="uint16 token file (the training split)")
    ap.add_argument("--vocab-size", type=int, required=True, help="the model's config.json vocab_size")
    ap.add_argument("--out", required=True, help="output path, e.g. models/mtp-mini/token_frequencies.bin")
    args = ap.parse_args()
    if not 1 <= args.vocab_size <= 1 << 31:
        sys.exit(f"--vocab-size {args.vocab_size} out of range")
    counts = count_tokens(args.tokens, args.vocab_size)
    write_file(args.out, counts)
    seen = sum(1 for c in counts if c)
    top = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    total = sum(counts)
    cover = {n: sum(counts[i] for i in top[:n]) / max(total, 1) for n in (512, 1024, 2048)}
    print(f"{args.out}: {total} tokens, {seen}/{len(counts)} ids seen; corpus coverage of the "
          + ", ".join(f"top {n}: {c:.4f}" for n, c in cover.items()))


if __name__ == "__main__":
    main()
