#!/usr/bin/env python3
"""long_docs.py - token streams of whole source documents, for the context-extension stretch.

    .venv/bin/python training/long_docs.py [--corpus data/corpus] [--out data/tokens-long]
        [--tokenizer models/mtp-v3/tokenizer.json] [--min-tokens 1024]

The corpus (datasets/build_corpus.py) cuts long sources into parts of at most 16,000 characters,
about 4,500 tokens, and the short-context token files interleave them with everything else, so a
4096-token window of data/tokens rarely stays inside one text. This script puts each source back
together, in its own order and inside its own split, so that a long window is one text:
    code, technical   the parts "<file>#<n>" of one file, by n
    prose             the chapters "<book> <n>" of one Bible book that fell into this split, by n
    quotes            the documents "<fortune file>/<n>" of one fortune file, by n
Parts are joined with a blank line. The train/valid/heldout split of build_corpus.py is kept as
it is (it is made per part group, so no held-out text is trained on).

Output (git-ignored, rebuilt): OUT/{split}.bin (uint16; per document BOS, tokens, EOS) and
OUT/{split}.index.json: [{"name", "category", "start", "tokens"}] for documents of at least
--min-tokens tokens (shorter ones are left out: the short-context stretches cover them).
"""
import argparse
import collections
import json
import os
import re

import numpy as np
from tokenizers import Tokenizer

SPLITS = ("train", "valid", "heldout")
BOS, EOS = 0, 1

# (category, pattern): group 1 is the source, group 2 the part's place in it.
SOURCE_OF = {
    "code": re.compile(r"^(.*?)(?:#(\d+))?$"),
    "technical": re.compile(r"^(.*?)(?:#(\d+))?$"),
    "prose": re.compile(r"^(.*) (\d+)$"),
    "quotes": re.compile(r"^(.*)/(\d+)$"),
}


def source_and_place(category, doc_id):
    m = SOURCE_OF[category].match(doc_id)
    if not m:
        raise SystemExit("long_docs: document id %r of category %s has no source part" % (doc_id, category))
    return m.group(1), int(m.group(2) or 0)


def whole_sources(path):
    """{(category, source): [(place, text)]} for one split's jsonl."""
    sources = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            src, place = source_and_place(d["category"], d["id"])
            sources[(d["category"], src)].append((place, d["text"]))
    return sources


def write_split(tok, corpus, out, split, min_tokens):
    sources = whole_sources(os.path.join(corpus, split + ".jsonl"))
    keys = sorted(sources)
    texts = ["\n\n".join(t for _, t in sorted(sources[k])) for k in keys]
    encs = tok.encode_batch(texts, add_special_tokens=False)
    ids, index, start = [], [], 0
    for (cat, src), enc in zip(keys, encs):
        if len(enc.ids) < min_tokens:
            continue
        doc = [BOS] + enc.ids + [EOS]
        index.append({"name": src, "category": cat, "start": start, "tokens": len(doc)})
        ids.extend(doc)
        start += len(doc)
    np.asarray(ids, dtype=np.uint16).tofile(os.path.join(out, split + ".bin"))
    with open(os.path.join(out, split + ".index.json"), "w") as f:
        json.dump(index, f, indent=0)
    return index


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--out", default="data/tokens-long")
    ap.add_argument("--tokenizer", default="models/mtp-v3/tokenizer.json")
    ap.add_argument("--min-tokens", type=int, default=1024)
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    if tok.get_vocab_size() > 65536:
        raise SystemExit("long_docs: vocabulary of %d ids does not fit uint16" % tok.get_vocab_size())
    os.makedirs(args.out, exist_ok=True)
    print("%-8s %-10s %6s %10s %8s %8s" % ("split", "category", "docs", "tokens", ">=4096", ">=8192"))
    for split in SPLITS:
        index = write_split(tok, args.corpus, args.out, split, args.min_tokens)
        by_cat = collections.defaultdict(list)
        for d in index:
            by_cat[d["category"]].append(d["tokens"])
        for cat, lens in sorted(by_cat.items()):
            print("%-8s %-10s %6d %10d %8d %8d" % (split, cat, len(lens), sum(lens),
                                                   sum(n >= 4096 for n in lens), sum(n >= 8192 for n in lens)))


if __name__ == "__main__":
    main()
