#!/usr/bin/env python3
"""build_corpus.py - build the training corpus of the embedded default model from Debian packages.

Run datasets/install_corpus_packages.sh (as root) first, then:

    .venv/bin/python datasets/build_corpus.py [--out data/corpus] [--cap-mb 9]

Categories and sources (all installed by the script above; nothing is downloaded here):
    prose      King James Bible (bible-kjv-text, read through its `bible` program), one doc per chapter.
    quotes     English fortune files (strfile text split on '%' lines; tfortunes split on '----'
               lines), consecutive cookies of one file grouped into documents of about 3 KB.
    code       Python 3.11 standard library sources; C headers of libc6-dev, linux-libc-dev,
               libpython3.11-dev.
    technical  Python 3.11 HTML documentation as plain text, man pages (sections 2-7 of
               manpages/manpages-dev, rendered by man), the Jargon File, FOLDOC, Debian Reference.

Each document is {"id", "category", "text"}. Long sources are cut into parts at blank lines; every
part of one source file shares a *group* (the file), and the train/valid/heldout split is made on
the group, by a hash of its name (90/5/5), so no held-out text, not even another part of the same
file, is trained on. The split depends only on the group name, so it does not move when caps or
sources change. Each category is capped (default 10 MB of text) by taking groups in hash order, so
the cap keeps a spread of the source rather than its alphabetical head; sub-caps inside code and
technical keep one source from crowding out the others. Exact duplicate texts are dropped.

Output (git-ignored, rebuilt): OUT/{train,valid,heldout}.jsonl and OUT/stats.json.
"""

import argparse
import gzip
import hashlib
import html
import html.parser
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

MB = 1_000_000
SPLITS = ("train", "valid", "heldout")

BIBLE_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah",
    "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah",
    "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark",
    "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians",
    "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy",
    "Titus", "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John",
    "Jude", "Revelation",
]

FORTUNE_DIR = "/usr/share/games/fortunes"
# Non-English (mario.* is Portuguese) or pictures rather than text.
FORTUNE_SKIP = re.compile(r"^(mario\..*|ascii-art|translate-me)$")


# --------------------------------------------------------------------------------------------
# Cleaning and chunking


def h64(s):
    """Stable 64-bit hash of a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def split_of(group):
    """90/5/5 by hash of the group name: deterministic and independent of everything else."""
    r = h64("split:" + group) % 100
    return "train" if r < 90 else ("valid" if r < 95 else "heldout")


def decode_bytes(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def clean(text):
    """Normalise line endings, drop control characters, trailing spaces and runs of blank lines.
    Returns None for text that looks binary (too many control characters)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(_CTRL.findall(text)) > max(4, len(text) // 200):
        return None
    text = _CTRL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def chunk(text, max_chars):
    """Cut text into parts of at most about max_chars, at blank lines (else at line ends)."""
    if len(text) <= max_chars:
        return [text]
    units = []  # (piece, separator that preceded it)
    for para in text.split("\n\n"):
        lines = para.split("\n") if len(para) > max_chars else [para]
        for j, line in enumerate(lines):
            units.append((line, "\n" if j else "\n\n"))
    parts, cur, cur_len = [], "", 0
    for piece, sep in units:
        if cur and cur_len + len(piece) > max_chars:
            parts.append(cur)
            cur, cur_len = "", 0
        cur = piece if not cur else cur + sep + piece
        cur_len += len(piece) + len(sep)
    if cur:
        parts.append(cur)
    return [p.strip("\n") for p in parts if p.strip()]


def make_docs(category, group, text, max_chars=16000):
    """One group (a source file) -> documents. Returns [] if the text is unusable."""
    text = clean(text) if text is not None else None
    if not text or len(text) < 200:
        return []
    parts = chunk(text, max_chars)
    if len(parts) == 1:
        return [{"id": group, "group": group, "category": category, "text": parts[0]}]
    return [{"id": f"{group}#{i}", "group": group, "category": category, "text": p}
            for i, p in enumerate(parts)]


# --------------------------------------------------------------------------------------------
# Sources: each yields (group, text) pairs, possibly lazily (text may be a callable).


def src_bible():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                         env=dict(os.environ, COLUMNS="0")).stdout.decode("utf-8")
    chapters, order = {}, []
    for line in out.splitlines():
        m = re.match(r"^(\w+?)(\d+):(\d+) (.*)$", line)
        if not m:
            continue
        abbr, ch, verse, body = m.groups()
        if abbr not in order:
            order.append(abbr)
        chapters.setdefault((abbr, int(ch)), []).append(f"{verse} {body}")
    if len(order) != len(BIBLE_BOOKS):
        sys.exit(f"bible: expected {len(BIBLE_BOOKS)} books, found {len(order)}")
    names = dict(zip(order, BIBLE_BOOKS))
    for (abbr, ch), verses in chapters.items():
        title = f"{names[abbr]} {ch}"
        yield f"prose/kjv/{title}", f"{title}\n\n" + "\n".join(verses)


def group_records(records, sep, target):
    """Join consecutive short records into groups of about target characters."""
    cur, n = [], 0
    for r in records:
        cur.append(r)
        n += len(r)
        if n >= target:
            yield sep.join(cur)
            cur, n = [], 0
    if cur:
        yield sep.join(cur)


def src_fortunes():
    for name in sorted(os.listdir(FORTUNE_DIR)):
        path = os.path.join(FORTUNE_DIR, name)
        if (name.endswith((".dat", ".u8")) or FORTUNE_SKIP.match(name) or os.path.islink(path)
                or not os.path.isfile(path)):
            continue
        with open(path, "rb") as f:
            text = clean(decode_bytes(f.read())) or ""
        cookies = [c.strip("\n") for c in re.split(r"^%$", text, flags=re.M) if c.strip()]
        for i, g in enumerate(group_records(cookies, "\n%\n", 3000)):
            yield f"quotes/fortunes/{name}/{i}", g
    tf = "/usr/share/games/tfortunes/epigrams/en.tfortunes"
    if os.path.exists(tf):
        with open(tf, "rb") as f:
            text = clean(decode_bytes(f.read())) or ""
        cookies = [c.strip("\n") for c in re.split(r"^---- .*$", text, flags=re.M) if c.strip()]
        for i, g in enumerate(group_records(cookies, "\n%\n", 3000)):
            yield f"quotes/tfortunes/en/{i}", g


def read_file(path):
    with open(path, "rb") as f:
        b = f.read()
    if b"\x00" in b[:4096]:
        return None
    return decode_bytes(b)


def src_python_code():
    root = "/usr/lib/python3.11"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages",
                                                             "__pycache__", "config-3.11-x86_64-linux-gnu"))
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                p = os.path.join(dirpath, fn)
                yield "code/py/" + os.path.relpath(p, root), (lambda p=p: read_file(p))


def dpkg_files(packages):
    """Files installed by the given Debian packages (so the corpus does not depend on whatever
    else happens to be installed on the build machine)."""
    r = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True)
    return sorted(set(p for p in r.stdout.splitlines()
                      if os.path.isfile(p) and not os.path.islink(p)))


def src_c_headers():
    for p in dpkg_files(["libc6-dev", "linux-libc-dev", "libpython3.11-dev"]):
        if p.startswith("/usr/include/") and p.endswith(".h"):
            yield "code/c/" + p[len("/usr/include/"):], (lambda p=p: read_file(p))


class HtmlText(html.parser.HTMLParser):
    """HTML -> plain text for Sphinx/DocBook pages: keeps <pre> whitespace, puts block elements on
    their own lines, drops scripts, navigation and Sphinx's pilcrow links."""

    BLOCK = {"p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr",
             "table", "ul", "ol", "dl", "blockquote", "br", "hr", "pre", "title"}
    SKIP = {"script", "style", "head", "nav"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.pre = [], 0, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.skip:  # inside a skipped element: track nesting depth only
            self.skip += tag not in self.VOID
            return
        if tag in self.SKIP or a.get("class") in ("headerlink", "related", "sphinxsidebar",
                                                   "navheader", "navfooter", "toc"):
            self.skip = 1
            return
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.out.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4", "dl") else "\n")
        if tag == "li":
            self.out.append("* ")

    def handle_endtag(self, tag):
        if self.skip:
            self.skip -= 1
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            self.out.append(data)
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self):
        t = "".join(self.out).replace("\u00b6", "")
        t = "\n".join(line.strip() if not line.startswith(" ") else line.rstrip()
                      for line in t.split("\n"))
        return t


def html_to_text(raw, main_re=None):
    if main_re:
        m = re.search(main_re, raw, flags=re.S)
        if m:
            raw = m.group(1)
    p = HtmlText()
    p.feed(raw)
    p.close()
    return p.text()


def src_python_docs():
    root = "/usr/share/doc/python3.11/html"
    for sub in ("tutorial", "library", "reference", "howto", "faq", "extending", "c-api",
                "using", "whatsnew", "distributing", "installing"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".html") and fn not in ("index.html", "changelog.html"):
                p = os.path.join(d, fn)

                def load(p=p):
                    raw = read_file(p) or ""
                    return html_to_text(raw, r'<div class="body" role="main">(.*?)'
                                             r'<div class="sphinxsidebar"')
                yield f"technical/pydoc/{sub}/{fn}", load


def render_man(path):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MAN_KEEP_FORMATTING="0")
    try:
        r = subprocess.run(["man", "-P", "cat", "-l", path], capture_output=True, env=env,
                           timeout=30)
        r2 = subprocess.run(["col", "-bx"], input=r.stdout, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return r2.stdout.decode("utf-8", "replace")


def src_man():
    for p in dpkg_files(["manpages", "manpages-dev"]):
        m = re.match(r"^/usr/share/man/man([2-7])/(.+)\.gz$", p)
        if m and os.path.getsize(p) >= 400:  # smaller ones are ".so other.3" redirect stubs
            yield f"technical/man/man{m.group(1)}/{m.group(2)}", (lambda p=p: render_man(p))


def dedent3(text):
    return "\n".join(line[3:] if line.startswith("   ") else line for line in text.split("\n"))


def src_jargon():
    with gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz", "rb") as f:
        text = clean(dedent3(decode_bytes(f.read())))
    # Entries start with ":headword:"; group consecutive entries into documents of ~3 KB.
    entries = re.split(r"\n(?=:[^\n:]+:)", text)
    body = [e for e in entries if e.startswith(":")]
    for i, g in enumerate(group_records(body, "\n\n", 3000)):
        yield f"technical/jargon/{i}", g


def src_foldoc():
    with gzip.open("/usr/share/dictd/foldoc.dict.dz", "rb") as f:
        text = clean(dedent3(decode_bytes(f.read())))
    # Entries start with an unindented headword line after a blank line.
    entries = re.split(r"\n\n(?=\S)", text)
    entries = [e for e in entries if not e.startswith("00-database")]
    for i, g in enumerate(group_records(entries, "\n\n", 3000)):
        yield f"technical/foldoc/{i}", g


def src_debian_reference():
    d = "/usr/share/debian-reference"
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if re.match(r"ch\d+\.en\.html$", fn):
            p = os.path.join(d, fn)
            yield f"technical/debref/{fn}", (lambda p=p: html_to_text(read_file(p) or ""))


# --------------------------------------------------------------------------------------------
# Assembly

# category -> list of (source name, generator, share of the category cap). Shares need not add
# to 1: a source that runs short leaves its room to the ones after it.
SOURCES = {
    "prose": [("kjv", src_bible, 1.0)],
    "quotes": [("fortunes", src_fortunes, 1.0)],
    "code": [("python", src_python_code, 0.6), ("c-headers", src_c_headers, 0.4)],
    "technical": [("jargon", src_jargon, 0.16), ("foldoc", src_foldoc, 0.16),
                  ("debian-reference", src_debian_reference, 0.1),
                  ("man", src_man, 0.28), ("python-docs", src_python_docs, 0.3)],
}


def load_text(t):
    return t() if callable(t) else t


def collect_source(category, gen, budget, seen):
    """Take groups in hash order until budget characters are used; returns (docs, chars)."""
    groups = sorted(gen(), key=lambda gt: h64("order:" + gt[0]))
    docs, used = [], 0
    # Render lazily but in parallel (man and HTML conversion dominate); small batches keep
    # the work done past the budget small. Two workers: the build machine has two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        i = 0
        while i < len(groups) and used < budget:
            batch = groups[i:i + 16]
            i += len(batch)
            texts = list(pool.map(lambda gt: load_text(gt[1]), batch))
            for (group, _), text in zip(batch, texts):
                if used >= budget:
                    break
                for d in make_docs(category, group, text):
                    key = hashlib.sha256(d["text"].encode("utf-8")).digest()
                    if key in seen:
                        continue
                    seen.add(key)
                    docs.append(d)
                    used += len(d["text"])
    return docs, used


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/corpus")
    ap.add_argument("--cap-mb", type=float, default=10.0, help="characters per category, in MB")
    ap.add_argument("--only", help="comma-separated categories (debugging)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    cap = int(args.cap_mb * MB)
    seen = set()
    all_docs = []
    stats = {}
    for category, sources in SOURCES.items():
        if args.only and category not in args.only.split(","):
            continue
        left = cap
        cat_docs = []
        for k, (name, gen, share) in enumerate(sources):
            last = k == len(sources) - 1
            budget = left if last else min(left, int(cap * share))
            docs, used = collect_source(category, gen, budget, seen)
            print(f"  {category:9s} {name:16s} {len(docs):6d} docs {used / MB:7.2f} MB",
                  file=sys.stderr)
            cat_docs += docs
            left -= used
        all_docs += cat_docs

    files = {s: open(os.path.join(args.out, f"{s}.jsonl"), "w", encoding="utf-8") for s in SPLITS}
    for d in sorted(all_docs, key=lambda d: (d["category"], d["id"])):
        s = split_of(d["group"])
        st = stats.setdefault(d["category"], {x: {"docs": 0, "chars": 0} for x in SPLITS})
        st[s]["docs"] += 1
        st[s]["chars"] += len(d["text"])
        files[s].write(json.dumps({"id": d["id"], "category": d["category"], "text": d["text"]},
                                  ensure_ascii=False) + "\n")
    for f in files.values():
        f.close()
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)

    print(f"{'category':10s} " + " ".join(f"{s + ' docs':>13s} {s + ' MB':>11s}" for s in SPLITS))
    tot = {s: [0, 0] for s in SPLITS}
    for c, st in stats.items():
        print(f"{c:10s} " + " ".join(f"{st[s]['docs']:13d} {st[s]['chars'] / MB:11.2f}"
                                    for s in SPLITS))
        for s in SPLITS:
            tot[s][0] += st[s]["docs"]
            tot[s][1] += st[s]["chars"]
    print(f"{'total':10s} " + " ".join(f"{tot[s][0]:13d} {tot[s][1] / MB:11.2f}" for s in SPLITS))


if __name__ == "__main__":
    main()
