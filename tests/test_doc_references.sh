#!/usr/bin/env bash
# test_doc_references.sh - every reference to a document points inside the repository.
# A clone holds only what git tracks, so a comment or page that cites a design note kept somewhere
# else (a sibling "shared/" folder, a page that was never committed) sends its reader nowhere.
# Over every text file git tracks (and new files not ignored), it fails on:
#   - a path into a "shared/" folder ending in .md;
#   - a markdown document named in capitals (README.md, RESULTS.md, ...) that no file of the
#     repository is called, except the few upstream files listed in EXTERNAL below;
#   - a path to a .md file under a top-level directory of the repository that does not exist;
#   - a "docs/design.md §N" or "docs/model.md §N.M" (also "§A, §B" lists after it) whose section
#     heading ("## N." / "### N.M") is not in that page.
# Generated outputs (runs/..., a script's $out_dir/...) are not top-level directories of the
# repository and are not checked.
#
#   ctest --test-dir build -R doc_references      (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'EOF'
import os, re, subprocess, sys

SELF = "tests/test_doc_references.sh"
# Upstream documents that the model-family page cites by name, with where they live.
EXTERNAL = {
    "README_WEIGHTS.md": "deepseek-ai/DeepSeek-V3's weight notes (docs/model.md sources)",
}
SKIP_PREFIXES = ("datasets/", "tests/fixtures/", "models/mtp-mini/tokenizer", "models/mtp-v3/tokenizer")

listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, text=True, check=True).stdout.splitlines()
files = [f for f in listed if os.path.isfile(f)]
basenames = {os.path.basename(f) for f in files}
top_dirs = {f.split("/", 1)[0] for f in files if "/" in f}

def headings(page):
    """Section numbers of PAGE's '## N. title' and '### N.M title' headings."""
    found = set()
    for line in open(page, encoding="utf-8"):
        m = re.match(r"#{2,4} (\d+(?:\.\d+)*)\.? ", line)
        if m:
            found.add(m.group(1))
    return found

SECTIONED = {p: headings(p) for p in ("docs/design.md", "docs/model.md") if os.path.exists(p)}

path_ref = re.compile(r"(?<![\w./$-])([A-Za-z0-9_][\w.-]*(?:/[\w.-]+)*\.md)\b")
section_ref = re.compile(r"(?:docs/)?(design|model)\.md,?((?:(?:\s*,\s*|\s+and\s+|\s*/\s*|\s+)§\d+(?:\.\d+)*)+)")

problems = []
for f in files:
    if f == SELF or f.startswith(SKIP_PREFIXES):
        continue
    try:
        text = open(f, encoding="utf-8").read()
    except (UnicodeDecodeError, OSError):
        continue  # binary
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{f}:{n}"
        for m in path_ref.finditer(line):
            ref = m.group(1)
            name = os.path.basename(ref)
            if "shared/" in ("/" + ref):
                problems.append(f"{where}: '{ref}' is outside the repository (a shared/ folder)")
            elif "/" not in ref:
                if re.fullmatch(r"[A-Z][A-Z0-9_-]*\.md", ref) and ref not in basenames \
                        and ref not in EXTERNAL:
                    problems.append(f"{where}: '{ref}': no file of the repository has this name")
            elif ref.split("/", 1)[0] in top_dirs:
                if not os.path.exists(ref):
                    problems.append(f"{where}: '{ref}' does not exist in the repository")
        for m in section_ref.finditer(line):
            page = f"docs/{m.group(1)}.md"
            for sec in re.findall(r"§(\d+(?:\.\d+)*)", m.group(2)):
                if page not in SECTIONED:
                    problems.append(f"{where}: '{page}' does not exist")
                elif sec not in SECTIONED[page]:
                    problems.append(f"{where}: {page} has no section §{sec} "
                                    f"(its sections: {', '.join(sorted(SECTIONED[page], key=lambda s: [int(x) for x in s.split('.')]))})")

for p in problems:
    print("test_doc_references: " + p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"test_doc_references: {len(files)} files, every document reference resolves")
EOF
