#!/usr/bin/env python3
"""make_long_prompts.py - write datasets/long.jsonl: prompts of increasing length from held-out
whole documents, for acceptance against context length (experiments/long.json).

    .venv/bin/python datasets/make_long_prompts.py [--corpus data/corpus]
        [--tokenizer models/mtp-v3/tokenizer.json] [--per-length 6] [--out datasets/long.jsonl]

Sources are put back together as training/long_docs.py does (the parts of one file, the chapters of
one Bible book, the cookies of one fortune file), from the held-out split only, so no model
trained on the corpus has seen them. For each target length L in LENGTHS, up to --per-length
sources with at least L + 128 tokens are taken in hash order of their names, alternating between
categories so that no single source kind fills a length; the prompt is the source's first L tokens
(decoded back to text, so the C tokenizer may count one or two tokens differently), the reference
the next 128. The category is "ctx-<L>" (the report groups by it); the source's own category and
name are kept in "source". question_id = 9000 + running number.
"""
import argparse
import hashlib
import json
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "training"))
from long_docs import whole_sources  # noqa: E402

LENGTHS = (128, 256, 512, 1024, 2048, 3072, 3968)
REF_TOKENS = 128


def h64(s):
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def interleave_by_category(items):
    """[(category, name, ids)] in hash order, alternating categories."""
    by_cat = {}
    for it in sorted(items, key=lambda it: h64(it[1])):
        by_cat.setdefault(it[0], []).append(it)
    out, queues = [], [by_cat[c] for c in sorted(by_cat)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--tokenizer", default="models/mtp-v3/tokenizer.json")
    ap.add_argument("--per-length", type=int, default=6)
    ap.add_argument("--out", default="datasets/long.jsonl")
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    sources = whole_sources(os.path.join(args.corpus, "heldout.jsonl"))
    items = []
    for (cat, name), parts in sorted(sources.items()):
        text = "\n\n".join(t for _, t in sorted(parts))
        items.append((cat, name, tok.encode(text, add_special_tokens=False).ids))
    items = interleave_by_category(items)
    qid = 9000
    with open(args.out, "w") as f:
        for L in LENGTHS:
            taken = [it for it in items if len(it[2]) >= L + REF_TOKENS][:args.per_length]
            for cat, name, ids in taken:
                qid += 1
                rec = {"question_id": qid, "category": "ctx-%d" % L,
                       "turns": [tok.decode(ids[:L])],
                       "reference": [tok.decode(ids[L:L + REF_TOKENS])],
                       "source": "%s:%s" % (cat, name)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            print("L = %4d: %d prompts (%s)" % (L, len(taken), ", ".join(sorted({c for c, _, _ in taken}))))


if __name__ == "__main__":
    main()
