#!/usr/bin/env python3
"""make_tokenizer_golden.py - golden token ids from the Python `tokenizers` library, for
tests/test_tokenizer.c (docs/design.md §11: "tokenizer ids equal to tokenizers' ids").

    .venv/bin/python training/make_tokenizer_golden.py

Writes, under tests/fixtures/tokenizer/:
  golden.jsonl                 {"text", "ids"} with models/mtp-mini/tokenizer.json for every prompt
                               (first turn) in datasets/*.jsonl and every hard string below
  tiny-tokenizer.json          a second tokenizer with the same DeepSeek-V3 pre-tokenizer and a tiny
                               vocabulary trained on a few KB (merges written in the "a b" string
                               form, so both merge spellings are covered; one added non-special
                               token "<think>")
  tiny-golden.jsonl            its ids for the hard strings
  tiny-gpt2-tokenizer.json     the tiny vocabulary behind a plain GPT-2 pre-tokenizer
                               (ByteLevel add_prefix_space=true, use_regex=true), covering those
                               two ByteLevel options
  tiny-gpt2-golden.jsonl       its ids for the hard strings

ids are encode(text, add_special_tokens=False).ids: no BOS (the C test adds BOS itself); special
tokens written in the text are recognised, as in the C tokenizer. An entry whose decode(ids) is not
its text (only with add_prefix_space) also has "decoded", what `tokenizers` decodes it to.
"""

import glob
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tokenizer import SPECIALS, build_tokenizer  # noqa: E402

OUT = "tests/fixtures/tokenizer"

BOS, EOS, PAD = SPECIALS
HARD = [
    "",
    " ",
    "a",
    "Hello, world!",
    "Hello, world!\n",
    "The quick brown fox jumps over the lazy dog.",
    # accents, combining marks, other scripts
    "Déjà vu: naïve café, façade, Ångström, Øresund, œuvre.",
    "e\u0301 a\u0300 n\u0303 (combining marks)",
    "Ünïcödé ßtraße ĲSSELMEER",
    "Привет, мир! Ελληνικά. Türkçe ğüşıöç.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    # CJK, kana, Korean
    "中文测试：你好，世界。",
    "東京タワーは333メートルです。",
    "こんにちは、世界！カタカナとひらがな。",
    "ｶﾀｶﾅ ﾊﾝｶｸ",
    "안녕하세요 세계, 한국어 텍스트입니다.",
    "mixed日本語text123漢字",
    # digits
    "1234567",
    "0000000000000000000000000000000000000000000000000",
    "3.14159265358979323846",
    "1,000,000 and 2024-11-28T10:10:18Z",
    "٣٤٥ ١٢٣٤ (Arabic-Indic digits)",
    "x² + y³ = z⁴, ½ ¾, Ⅻ ⅷ",
    "v1.2.3-rc4+build.567",
    # whitespace
    "a  b   c    d",
    "\t\tindented with tabs\t",
    "line one\r\nline two\r\n",
    "cr only\rline\r",
    "trailing spaces   ",
    "   leading spaces",
    "\n\n\n",
    " \n \n  \n",
    "\n",
    "    def f(x):\n        return x * 2\n\n\n",
    "no\u00a0break\u00a0space and\u3000ideographic space",
    "line\u2028separator\u2029paragraph",
    "zero\u200bwidth\u200cjoiner\u200d",
    # emoji
    "👍 👍🏽 🎉🎉🎉",
    "family: 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 🧑🏿‍💻",
    "flags 🇯🇵🇺🇸🇩🇪",
    "❤️ ☺ ✂️ ©®™",
    # punctuation and code
    "!!!???...,,,;;;",
    "--->  <=== ==> ... …",
    "\"quoted\" 'single' «guillemets» „low“ ‘curly’",
    "don't I'm we'll you've she's they'd",
    "#include <stdio.h>\nint main(void) { return printf(\"%d\\n\", 42) < 0; }\n",
    "x+=1;//comment\ny=x**2/3%4^5&6|7~8",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.org; C:\\Windows\\System32\\",
    "$HOME/.config/@scope/pkg_name-v2.json",
    "a.b.c a,b,c a;b;c (a)(b)[c]{d}",
    "\\p{N}{1,3} [一-龥] regex-like text",
    # special tokens in text
    BOS + "Hello",
    "Hello" + EOS,
    BOS + "You are helpful." + EOS + PAD + PAD,
    "before " + EOS + " after",
    "<｜end▁of▁sentence",
    "<｜end▁of▁sentence｜",
    "<｜User｜>Hi<｜Assistant｜>",
    "<think>reasoning</think> and <thinking>",
    EOS + EOS + EOS,
    "<" + BOS + ">",
    # misc
    "a\u0000b",
    "tab\there\x0bvt\x0cff",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the the the the the the the",
    "ThisIsCamelCase and snake_case_name and SCREAMING_CASE",
    "%\nA fortune cookie.\n\t\t-- Anonymous\n%\n",
]

TINY_TRAIN = """In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep.
def tokenize(text: str) -> list[int]:
    return [ord(c) for c in text if c != ' ']
#include <stdlib.h>
static int add(int a, int b) { return a + b; }
The quick brown fox jumps over the lazy dog. 1234567890 3.14159
%
Anything that can go wrong will go wrong.
		-- Murphy's Law
%
man(1): an interface to the system reference manuals. The NAME section, SYNOPSIS, DESCRIPTION.
Déjà vu, café, naïve. 東京タワー こんにちは 안녕하세요 👍🎉
"""


def read_prompts():
    out = []
    for path in sorted(glob.glob("datasets/*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                q = json.loads(line)
                out += q["turns"]
    return out


def write_golden(tok, texts, path):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            ids = tok.encode(t, add_special_tokens=False).ids
            entry = {"text": t, "ids": ids}
            decoded = tok.decode(ids, skip_special_tokens=False)
            if decoded != t:  # e.g. ByteLevel's add_prefix_space adds a leading space
                entry["decoded"] = decoded
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(texts)} entries, {os.path.getsize(path) // 1024} KB")


def train_tiny():
    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=SPECIALS,
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TINY_TRAIN] * 3, trainer=trainer)
    tok.add_tokens(["<think>"])  # an added token that is not special
    return tok


def save_with_string_merges(tok, path):
    """Save TOK with merges spelled "a b" (the older tokenizer.json form)."""
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
    return Tokenizer.from_file(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    main_tok = Tokenizer.from_file("models/mtp-mini/tokenizer.json")
    write_golden(main_tok, read_prompts() + HARD, os.path.join(OUT, "golden.jsonl"))

    tiny = save_with_string_merges(train_tiny(), os.path.join(OUT, "tiny-tokenizer.json"))
    write_golden(tiny, HARD + [TINY_TRAIN], os.path.join(OUT, "tiny-golden.jsonl"))

    gpt2 = Tokenizer.from_str(tiny.to_str())
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    gpt2.decoder = decoders.ByteLevel()
    gpt2 = save_with_string_merges(gpt2, os.path.join(OUT, "tiny-gpt2-tokenizer.json"))
    write_golden(gpt2, HARD + [TINY_TRAIN], os.path.join(OUT, "tiny-gpt2-golden.jsonl"))
    assert isinstance(gpt2.model, models.BPE)


if __name__ == "__main__":
    main()
