#!/usr/bin/env python3
"""make_prompts.py - write the shipped prompt sets datasets/<category>.jsonl from the held-out split.

    .venv/bin/python datasets/make_prompts.py [--corpus data/corpus]
        [--tokenizer models/mtp-mini/tokenizer.json] [--max-per-category 250]

Each line is a Spec-Bench question: {"question_id": int, "category": str, "turns": [prompt],
"reference": [continuation]}. Only held-out documents are used (datasets/build_corpus.py splits by
document, so the default model never trained on them).

A prompt is a window of one document: it starts at a line start, its length is drawn per window
between 48 and 160 tokens of the trained tokenizer, and it is cut at the last line end or sentence
end at or before that length (a word boundary if the text has none). The reference is the next 128
tokens (a little more if needed to end on a whole UTF-8 character). Windows do not overlap; the next
one starts at the first line start after the previous reference. Everything (document order,
lengths, which windows are kept when a category has more than the maximum) comes from hashes of
document ids, so the files are reproducible. question_id = 1000 * (index of the category in sorted
order) + running number, unique across all files.
"""

import argparse
import hashlib
import json
import os
import sys

from tokenizers import Tokenizer

MIN_PROMPT, MAX_PROMPT, REF_TOKENS = 48, 160, 128
SENTENCE_END = (".", "!", "?", ".\"", ".'", "!\"", "?\"", ".)")


def h64(s):
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def bytes_to_unicode():
    """GPT-2's byte -> printable character table used by the ByteLevel pre-tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_DECODER = {c: b for b, c in bytes_to_unicode().items()}


class Doc:
    """One document's tokens with the raw bytes of each token."""

    def __init__(self, tok, text):
        self.ids = tok.encode(text, add_special_tokens=False).ids
        self.raw = [bytes(BYTE_DECODER[c] for c in tok.id_to_token(i)) for i in self.ids]

    def text(self, a, b):
        """Text of tokens [a, b), or None if it does not fall on character boundaries."""
        try:
            return b"".join(self.raw[a:b]).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def ends_line(self, i):
        return self.raw[i].endswith(b"\n")

    def ends_sentence(self, i):
        r = self.raw[i].rstrip(b"\n")
        nxt = self.raw[i + 1] if i + 1 < len(self.raw) else b" "
        return r.decode("latin-1").endswith(SENTENCE_END) and nxt[:1] in (b" ", b"\n")

    def ends_word(self, i):
        nxt = self.raw[i + 1] if i + 1 < len(self.raw) else b" "
        return nxt[:1] in (b" ", b"\n", b"\t")


def cut_prompt(doc, start, want):
    """End index (exclusive) of a prompt starting at token start: the last natural boundary with
    MIN_PROMPT <= length <= want; None if there is none."""
    hi = min(start + want, len(doc.ids)) - 1
    lo = start + MIN_PROMPT - 1
    for test in (lambda i: doc.ends_line(i) or doc.ends_sentence(i), doc.ends_word):
        for i in range(hi, lo - 1, -1):
            if test(i) and doc.text(start, i + 1) is not None:
                return i + 1
    return None


def windows(tok, doc_id, text):
    doc = Doc(tok, text)
    start, k = 0, 0
    while start + MIN_PROMPT + REF_TOKENS <= len(doc.ids):
        want = MIN_PROMPT + h64(f"len:{doc_id}:{k}") % (MAX_PROMPT - MIN_PROMPT + 1)
        end = cut_prompt(doc, start, want)
        if end is None or end + REF_TOKENS > len(doc.ids):
            break
        ref_end = end + REF_TOKENS
        while ref_end < len(doc.ids) and doc.text(end, ref_end) is None:
            ref_end += 1
        prompt, ref = doc.text(start, end), doc.text(end, ref_end)
        n_prompt = len(tok.encode(prompt, add_special_tokens=False).ids)
        if ref is not None and prompt.strip() and ref.strip() and n_prompt <= MAX_PROMPT + 8:
            yield {"key": f"{doc_id}:{k}", "prompt": prompt, "reference": ref,
                   "prompt_tokens": n_prompt}
        k += 1
        # Next window: first line start after this reference.
        start = ref_end
        while start < len(doc.ids) and not doc.ends_line(start - 1):
            start += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--tokenizer", default="models/mtp-mini/tokenizer.json")
    ap.add_argument("--out", default="datasets")
    ap.add_argument("--max-per-category", type=int, default=250)
    args = ap.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    by_cat = {}
    with open(os.path.join(args.corpus, "heldout.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            by_cat.setdefault(d["category"], []).extend(windows(tok, d["id"], d["text"]))

    for ci, cat in enumerate(sorted(by_cat)):
        ws = by_cat[cat]
        if len(ws) > args.max_per_category:  # keep a hash-chosen subset, in document order
            keep = set(sorted(range(len(ws)), key=lambda i: h64("keep:" + ws[i]["key"]))
                       [:args.max_per_category])
            ws = [w for i, w in enumerate(ws) if i in keep]
        path = os.path.join(args.out, f"{cat}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for i, w in enumerate(ws):
                q = {"question_id": 1000 * ci + i + 1, "category": cat, "turns": [w["prompt"]],
                     "reference": [w["reference"]]}
                f.write(json.dumps(q, ensure_ascii=False) + "\n")
        lens = sorted(w["prompt_tokens"] for w in ws)
        print(f"{path}: {len(ws)} prompts, prompt tokens min {lens[0]} median "
              f"{lens[len(lens) // 2]} max {lens[-1]}, {os.path.getsize(path) // 1024} KB")
        if len(ws) < 100:
            print(f"warning: {cat} has fewer than 100 prompts", file=sys.stderr)


if __name__ == "__main__":
    main()
