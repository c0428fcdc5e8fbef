#!/usr/bin/env python3
"""train_tokenizer.py - train the byte-level BPE tokenizer of the embedded default model and
write the token streams the trainer reads.

    .venv/bin/python training/train_tokenizer.py [--corpus data/corpus] [--vocab-size 4096]

Vocabulary size 4096: the default model is tiny and is trained in under two hours on two CPU
cores. With a small vocabulary each token is seen far more often, so the model learns every
embedding and output row well from a ~25 MB corpus; with DeepSeek-V3's 128K vocabulary most rows
would barely be trained, and the embedding and LM head (vocab x hidden each) would be most of the
parameters instead of a small part. 4096 ids also fit the uint16 token files.

Everything else follows DeepSeek-V3's tokenizer.json (docs/model.md section 8), so the C
tokenizer that reads this file also reads the real one:
  - model BPE, byte-level, no byte fallback, no unk token; no normalizer;
  - pre-tokenizer Sequence: Split(\\p{N}{1,3}), Split(CJK/kana runs), Split(the six-branch
    alternation), all Isolated, then ByteLevel(add_prefix_space=false, trim_offsets=true,
    use_regex=false);
  - ByteLevel decoder;
  - special added tokens <｜begin▁of▁sentence｜> = 0, <｜end▁of▁sentence｜> = 1, <｜▁pad▁｜> = 2.

The tokenizer is trained on the train split only; training is deterministic for a given corpus,
but the corpus follows the installed Debian package versions, so once a model is trained on it the
committed tokenizer.json is the reference: rebuild token files for it with --encode-only. Outputs:
  models/mtp-mini/tokenizer.json
  data/tokens/{train,valid,heldout}.bin  uint16 ids; each document is BOS, its tokens, EOS, in the
                                        order of the jsonl (sorted by category, then id), so each
                                        category is one contiguous range
  data/tokens/meta.json                 counts per split and category, and each category's
                                        [start, end) token range in each file
"""

import argparse
import json
import os
import sys

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
SPECIALS = [BOS, EOS, PAD]  # ids 0, 1, 2

# DeepSeek-V3's three Split patterns, verbatim (docs/model.md section 8).
PAT_DIGITS = r"\p{N}{1,3}"
PAT_CJK = "[一-龥぀-ゟ゠-ヿ]+"
PAT_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"
            r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
            r"| ?[\p{P}\p{S}]+[\r\n]*"
            r"|\s*[\r\n]+"
            r"|\s+(?!\S)"
            r"|\s+")

SPLITS = ("train", "valid", "heldout")

# (text, expected pre-tokens before the byte-level map) for the self-check.
PRETOK_CHECKS = [
    ("1234567", ["123", "456", "7"]),
    ("Hello, world!\n", ["Hello", ",", " world", "!\n"]),
    ("def f(x):\n    return x", ["def", " f", "(x", "):\n", "   ", " return", " x"]),
    ("日本語のテキスト", ["日本語のテキスト"]),
]


def deepseek_splits():
    return [pre_tokenizers.Split(Regex(p), behavior="isolated", invert=False)
            for p in (PAT_DIGITS, PAT_CJK, PAT_MAIN)]


def build_tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(deepseek_splits() + [
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def read_docs(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def check_pretokenizer(tok):
    """Print how a few strings pre-tokenize and stop if DeepSeek's splits are not reproduced."""
    # Compare before the byte-level map: rebuild the Split part alone.
    splits_only = pre_tokenizers.Sequence(deepseek_splits())
    ok = True
    for text, want in PRETOK_CHECKS:
        got_bl = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
        print(f"  pre-tokenize {text!r:36} -> {got_bl}")
        got = [p for p, _ in splits_only.pre_tokenize_str(text)]
        if got != want:
            print(f"    MISMATCH: expected {want}, got {got}", file=sys.stderr)
            ok = False
    for text in ["The LORD is my shepherd; I shall not want.", "if (n >= 1024) return -1;",
                 "Déjà vu, naïve café — 東京 2024年"]:
        enc = tok.encode(text, add_special_tokens=False)
        print(f"  encode {text!r} -> {enc.tokens}")
    if not ok:
        sys.exit("pre-tokenizer does not reproduce DeepSeek-V3's splits")


def encode_split(tok, path, out_bin):
    """Write one split's token file; returns its meta entry."""
    docs = list(read_docs(path))
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    encs = tok.encode_batch([d["text"] for d in docs], add_special_tokens=False)
    cats, pos, chunks = {}, 0, []
    for d, e in zip(docs, encs):
        ids = [bos] + e.ids + [eos]
        c = cats.setdefault(d["category"], {"docs": 0, "chars": 0, "tokens": 0,
                                            "start": pos, "end": pos})
        if c["end"] != pos:
            sys.exit(f"{path}: category {d['category']} is not contiguous (sort the jsonl)")
        c["docs"] += 1
        c["chars"] += len(d["text"])
        c["tokens"] += len(ids)
        pos += len(ids)
        c["end"] = pos
        chunks.append(np.asarray(ids, dtype=np.uint16))
    arr = np.concatenate(chunks) if chunks else np.zeros(0, np.uint16)
    arr.tofile(out_bin)
    return {"file": os.path.basename(out_bin), "tokens": int(arr.size), "docs": len(docs),
            "chars": sum(c["chars"] for c in cats.values()), "categories": cats}


def train(args):
    """Train on the train split and save; deterministic for a given corpus."""
    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2,
                                  special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    train_path = os.path.join(args.corpus, "train.jsonl")
    tok.train_from_iterator((d["text"] for d in read_docs(train_path)), trainer=trainer)
    os.makedirs(os.path.dirname(args.out_tokenizer), exist_ok=True)
    tok.save(args.out_tokenizer)
    print(f"wrote {args.out_tokenizer}: vocab {tok.get_vocab_size()}")
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--out-tokens", default="data/tokens")
    ap.add_argument("--out-tokenizer", default="models/mtp-mini/tokenizer.json")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--encode-only", action="store_true",
                    help="keep the existing tokenizer.json (the one the model was trained with) "
                         "and only rewrite the token files")
    args = ap.parse_args()

    if args.encode_only:
        tok = Tokenizer.from_file(args.out_tokenizer)
    else:
        tok = train(args)
    for i, s in enumerate(SPECIALS):
        if tok.token_to_id(s) != i:
            sys.exit(f"special token {s} got id {tok.token_to_id(s)}, expected {i}")
    check_pretokenizer(tok)

    os.makedirs(args.out_tokens, exist_ok=True)
    meta = {"tokenizer": args.out_tokenizer, "vocab_size": tok.get_vocab_size(), "dtype": "uint16",
            "bos_id": 0, "eos_id": 1, "pad_id": 2,
            "layout": "per document: BOS, tokens, EOS; documents sorted by (category, id)",
            "splits": {}}
    for s in SPLITS:
        meta["splits"][s] = encode_split(tok, os.path.join(args.corpus, f"{s}.jsonl"),
                                         os.path.join(args.out_tokens, f"{s}.bin"))
    with open(os.path.join(args.out_tokens, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)

    print(f"{'split':8s} {'category':10s} {'docs':>6s} {'chars':>10s} {'tokens':>10s} "
          f"{'chars/tok':>9s}")
    for s, m in meta["splits"].items():
        for c, v in m["categories"].items():
            print(f"{s:8s} {c:10s} {v['docs']:6d} {v['chars']:10d} {v['tokens']:10d} "
                  f"{v['chars'] / max(1, v['tokens']):9.2f}")
        print(f"{s:8s} {'all':10s} {m['docs']:6d} {m['chars']:10d} {m['tokens']:10d} "
              f"{m['chars'] / max(1, m['tokens']):9.2f}")


if __name__ == "__main__":
    main()
