#!/usr/bin/env bash
# gpu-check-ci.sh - CI's dry run of the GPU check, made the way a session
# makes its device calls (README "On a GPU"), in a throwaway clone of this
# checkout (its working files copied over it), never in the checkout itself:
#   1. --stage mtp-mini,mtp-v3 must be refused (over 64 MiB together) and
#      leave the tree as it was;
#   2. --stage mtp-mini: the bytes it prints must equal the files the device
#      tool would send, counted another way; then the dry run (the first call);
#   3. --stage mtp-v3, then the dry run with --reuse-build (the second call):
#      the staged model unpacked, the checks needing mtp-mini skipped;
#   4. --unstage: git sees no change in the clone.
# Needs .gpu-deps/prefix (scripts/gpu-check.sh --prepare). Outputs:
# OUT_BASE/summary.txt etc. of call 1 and OUT_BASE-v3/ of call 2.
#   scripts/gpu-check-ci.sh [OUT_BASE]     (default build-gpu-dry/out)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_BASE=${1:-build-gpu-dry/out}
fail() { echo "gpu-check-ci: $*" >&2; exit 1; }
[ -d .gpu-deps/prefix/usr ] || fail "no .gpu-deps/prefix: run scripts/gpu-check.sh --prepare first"
mkdir -p "$OUT_BASE" "$OUT_BASE-v3"
OUT1=$(cd "$OUT_BASE" && pwd)
OUT2=$(cd "$OUT_BASE-v3" && pwd)
tmp=$(mktemp -d)
clone=$tmp/repo
cleanup() {
  [ -x "$clone/scripts/gpu-check.sh" ] && "$clone/scripts/gpu-check.sh" --unstage >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

git clone -q --shared "$ROOT" "$clone"
# The working files (uncommitted changes too) over the clone's checkout; the
# checkpoints stay as committed, so the clone's git sees them unchanged.
git ls-files -z --cached --others --exclude-standard -- ':!models/*/model.safetensors' |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$clone"
mkdir -p "$clone/.gpu-deps" && cp -a .gpu-deps/prefix "$clone/.gpu-deps/"
cd "$clone"
git diff --quiet -- models || fail "the clone's models differ from its index"

# 1. two models in one call: refused, nothing staged
if msg=$(scripts/gpu-check.sh --stage mtp-mini,mtp-v3 2>&1); then
  fail "mtp-mini and mtp-v3 staged together, over the limit: $msg"
fi
grep -q "in a separate call" <<<"$msg" || fail "refusal does not say to stage separately: $msg"
[ ! -e .gpu-models ] && git diff --quiet -- models || fail "a refused --stage left the tree changed"
echo "gpu-check-ci: refused as it must: ${msg#gpu-stage: }"

# 2. call 1: mtp-mini
staged_bytes() { # the figure --stage printed
  sed -n 's/^gpu-stage: \([0-9]*\) bytes (.*would travel.*/\1/p' <<<"$1"
}
msg=$(scripts/gpu-check.sh --stage mtp-mini) || fail "--stage mtp-mini refused: $msg"
echo "$msg"
counted=$(find . \( -path ./.git -o -path ./.gpu-deps/staged \) -prune -o \( -type f -o -type l \) -printf '%s\n' | awk '{ s += $1 } END { print s }')
[ "$(staged_bytes "$msg")" = "$counted" ] ||
  fail "--stage printed $(staged_bytes "$msg") bytes; the files that would travel hold $counted"
scripts/gpu-check.sh --dry-run --out "$OUT1" || fail "dry run with mtp-mini staged failed ($OUT1/summary.txt)"
grep -q '^models  *ok  *staged in .gpu-models: mtp-mini$' "$OUT1/summary.txt" ||
  fail "call 1 did not unpack mtp-mini ($OUT1/summary.txt)"
grep -q '^quick-study  *ok' "$OUT1/summary.txt" || fail "call 1 did not run the quick study on mtp-mini"

# 3. call 2 on the warm machine: mtp-v3, the build reused
msg=$(scripts/gpu-check.sh --stage mtp-v3) || fail "--stage mtp-v3 refused: $msg"
echo "$msg"
scripts/gpu-check.sh --dry-run --reuse-build --out "$OUT2" || fail "dry run with mtp-v3 staged failed ($OUT2/summary.txt)"
grep -q '^models  *ok  *staged in .gpu-models: mtp-v3$' "$OUT2/summary.txt" || fail "call 2 did not unpack mtp-v3"
cmp -s models/mtp-v3/model.safetensors <(git cat-file blob :models/mtp-v3/model.safetensors) ||
  fail "unpacked mtp-v3 differs from git's"
grep -q '^build  *reused' "$OUT2/summary.txt" || fail "call 2 rebuilt"
grep -q '^quick-study  *skipped  *model mtp-mini not present' "$OUT2/summary.txt" ||
  fail "call 2 did not skip the quick study for lack of mtp-mini"

# 4. back as it was
scripts/gpu-check.sh --unstage
[ ! -e .gpu-models ] && git diff --quiet -- models || fail "--unstage left the models changed"
echo "gpu-check-ci: ok (call 1: $OUT1, call 2: $OUT2)"
