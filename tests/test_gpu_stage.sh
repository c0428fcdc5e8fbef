#!/usr/bin/env bash
# test_gpu_stage.sh - scripts/gpu-stage.sh (gpu-check.sh --stage / --unstage)
# in a small throwaway git repository shaped like this one (two models of
# random, incompressible bytes), never in the developer's checkout:
#   - the bytes it prints equal the files the device tool sends, counted
#     here another way (every file under the tree but .git, the ignored
#     ones and the removed checkpoints);
#   - a limit one byte under that total refuses, exit 1, tree restored; the
#     total itself passes; two models over the limit are refused with the
#     advice to stage them in separate calls;
#   - a model.safetensors with local changes is never removed;
#   - an unknown model is refused;
#   - unpack (gzip, and python3's gzip module) gives back the exact bytes;
#   - unstage restores the checkpoints: git sees no change.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_gpu_stage: $*" >&2; exit 1; }

repo=$tmp/repo
mkdir -p "$repo/scripts" "$repo/models/m1" "$repo/models/m2" "$repo/.gpu-deps/prefix/lib"
cp "$src/scripts/gpu-stage.sh" "$src/scripts/gpu-check.sh" "$repo/scripts/"
printf '/.gpu-deps/\n/.gpu-models/\n/ignored.txt\n' >"$repo/.gitignore"
head -c 200000 /dev/urandom >"$repo/models/m1/model.safetensors"
head -c 300000 /dev/urandom >"$repo/models/m2/model.safetensors"
echo '{"m": 1}' >"$repo/models/m1/config.json"
echo '{"m": 2}' >"$repo/models/m2/config.json"
head -c 1234 /dev/urandom >"$repo/README.md"
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=t -c user.email=t@t commit -q -m fixture
head -c 777 /dev/urandom >"$repo/untracked.txt"     # travels
head -c 5000 /dev/urandom >"$repo/ignored.txt"      # does not
head -c 4321 /dev/urandom >"$repo/.gpu-deps/prefix/lib/libx.so" # carried
cp "$repo/models/m1/model.safetensors" "$tmp/m1.orig"
cp "$repo/models/m2/model.safetensors" "$tmp/m2.orig"
stage() { "$repo/scripts/gpu-check.sh" --stage "$@"; }
unstaged_ok() { # the checkpoints back, .gpu-models gone, git sees no change
  cmp -s "$repo/models/m1/model.safetensors" "$tmp/m1.orig" || fail "$1: m1 not restored"
  cmp -s "$repo/models/m2/model.safetensors" "$tmp/m2.orig" || fail "$1: m2 not restored"
  [ ! -e "$repo/.gpu-models" ] || fail "$1: .gpu-models left behind"
  git -C "$repo" diff --quiet || fail "$1: git sees changes"
}

# 1. the size: every file but .git, ignored.txt, the cache and the removed checkpoints
out=$(stage m1) || fail "stage m1 refused: $out"
expected=$(cd "$repo" && find . \( -path ./.git -o -path ./.gpu-deps/staged \) -prune -o -type f ! -path ./ignored.txt -printf '%s\n' |
  awk '{ s += $1 } END { print s }')
printed=$(sed -n 's/.*: \([0-9]*\) bytes (.* would travel.*/\1/p' <<<"$out")
[ "$printed" = "$expected" ] || fail "printed $printed bytes, the files that travel hold $expected ($out)"
[ ! -e "$repo/models/m1/model.safetensors" ] && [ ! -e "$repo/models/m2/model.safetensors" ] ||
  fail "stage m1 left a model.safetensors in the tree"
[ -s "$repo/.gpu-models/m1.safetensors.gz" ] && [ ! -e "$repo/.gpu-models/m2.safetensors.gz" ] ||
  fail "stage m1 did not write .gpu-models/m1.safetensors.gz alone"

# 2. unpack, both ways, gives back the exact bytes
names=$("$repo/scripts/gpu-stage.sh" unpack) || fail "unpack failed"
[ "$names" = m1 ] || fail "unpack printed '$names', expected m1"
cmp -s "$repo/models/m1/model.safetensors" "$tmp/m1.orig" || fail "gzip unpack changed m1's bytes"
rm "$repo/models/m1/model.safetensors"
GPU_STAGE_GUNZIP=python "$repo/scripts/gpu-stage.sh" unpack >/dev/null || fail "python3 unpack failed"
cmp -s "$repo/models/m1/model.safetensors" "$tmp/m1.orig" || fail "python3 unpack changed m1's bytes"
"$repo/scripts/gpu-check.sh" --unstage >/dev/null || fail "unstage failed"
unstaged_ok "unstage after stage m1"

# 3. the limit: the total passes, one byte less is refused and restores the tree
GPU_STAGE_LIMIT_BYTES=$expected stage m1 >/dev/null || fail "a total equal to the limit was refused"
"$repo/scripts/gpu-check.sh" --unstage >/dev/null
if msg=$(GPU_STAGE_LIMIT_BYTES=$((expected - 1)) stage m1 2>&1); then
  fail "$expected bytes passed a limit of $((expected - 1)): the limit is not checked"
fi
grep -q "over the limit" <<<"$msg" || fail "refusal does not say why: $msg"
unstaged_ok "refused stage m1"
if msg=$(GPU_STAGE_LIMIT_BYTES=$((expected + 1000)) stage m1,m2 2>&1); then
  fail "m1 and m2 together passed a limit only m1 fits"
fi
grep -q -- "--stage m1 now and --stage m2 in a separate call" <<<"$msg" ||
  fail "refusal of two models does not say to stage them separately: $msg"
unstaged_ok "refused stage m1,m2"

# 4. local changes are never removed; unknown models are refused
printf 'x' >>"$repo/models/m2/model.safetensors"
if msg=$(stage m1 2>&1); then fail "staged over a locally changed models/m2/model.safetensors"; fi
grep -q "models/m2/model.safetensors differs" <<<"$msg" || fail "local-change refusal unclear: $msg"
[ "$(stat -c %s "$repo/models/m2/model.safetensors")" = 300001 ] || fail "the changed m2 was touched"
[ -e "$repo/models/m1/model.safetensors" ] || fail "a refused stage removed m1"
git -C "$repo" checkout -q -- models/m2/model.safetensors
if msg=$(stage m3 2>&1); then fail "staged an unknown model m3"; fi
grep -q "no shipped model 'm3' (git tracks: m1 m2)" <<<"$msg" || fail "unknown-model refusal unclear: $msg"
unstaged_ok "refused stage m3"
echo "test_gpu_stage: ok (m1 staged: $expected bytes travel)"
