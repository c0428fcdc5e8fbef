#!/usr/bin/env bash
# gpu-stage.sh - fit a GPU check's call under the device tool's limit on what
# travels: the working tree's tracked and untracked-not-ignored files plus the
# carried paths, 64 MiB in all. The three shipped checkpoints alone are 134 MB,
# so a call carries at most one of them, gzip-compressed, in .gpu-models/
# (ignored by git), and the working tree goes without every model.safetensors.
#   scripts/gpu-stage.sh stage MODEL[,MODEL...]   here, before a call (also: gpu-check.sh --stage)
#   scripts/gpu-stage.sh unstage                  here, after the calls (also: gpu-check.sh --unstage)
#   scripts/gpu-stage.sh size                     bytes that would travel now
#   scripts/gpu-stage.sh unpack                   there: .gpu-models/NAME.safetensors.gz ->
#                                                 models/NAME/model.safetensors; prints each NAME
# stage refuses (exit 1, nothing removed) when a model.safetensors differs from
# git's index (restoring it later would lose that change), and refuses (exit 1,
# the tree restored) when the bytes that would travel exceed the limit.
# Why gzip and not zstd: at level 6 both give 46.0 MB for mtp-v3 (zstd 0.1 %
# smaller), and gzip - or python3's gzip module when the binary is missing -
# exists on every image, while zstd's binary is not promised on the device
# image and Python has no zstd module before 3.14.
# GPU_STAGE_LIMIT_BYTES overrides the limit (tests); GPU_STAGE_GUNZIP=python
# forces the python3 fallback of unpack (tests).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
STAGE=.gpu-models
CACHE=.gpu-deps/staged # NAME's gzip by git blob id: a second --stage takes no time (not carried)
CARRY=(.gpu-deps/prefix "$STAGE") # what a call names in carry
LIMIT=${GPU_STAGE_LIMIT_BYTES:-67108864} # 64 MiB

die() { echo "gpu-stage: $*" >&2; exit 1; }
shipped() { git ls-files -- 'models/*/model.safetensors'; }
name_of() { local d=${1%/model.safetensors}; echo "${d#models/}"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# What the tool sends: tracked files still in the working tree, untracked
# files git does not ignore, and the carried paths (symbolic links travel as
# links: their own size).
travel_bytes() {
  {
    git ls-files -z --cached --others --exclude-standard --deduplicate |
      xargs -0 -r stat -c %s -- 2>/dev/null # a removed tracked file: no stat, not counted
    local p
    for p in "${CARRY[@]}"; do
      if [ -e "$p" ]; then find "$p" \( -type f -o -type l \) -printf '%s\n'; fi
    done
    true # xargs' status when a removed file failed its stat
  } | awk '{ s += $1 } END { print s + 0 }'
}

# Restore every removed model.safetensors from git's index; a file that is
# there is left alone (it may hold changes).
unstage() {
  local f
  for f in $(shipped); do
    [ -e "$f" ] || git checkout -- "$f" || die "cannot restore $f (git checkout -- $f)"
  done
  rm -rf "$STAGE"
  echo "gpu-stage: every model.safetensors restored, $STAGE removed"
}

stage() {
  local list=${1:?stage needs MODEL[,MODEL...]} all name f names
  all=$(shipped)
  IFS=, read -ra names <<<"$list"
  [ ${#names[@]} -gt 0 ] || die "stage needs a model name"
  for name in "${names[@]}"; do
    grep -qx "models/$name/model.safetensors" <<<"$all" ||
      die "no shipped model '$name' (git tracks: $(for f in $all; do name_of "$f"; done | paste -sd' '))"
  done
  for f in $all; do # absent: staged before, the index still has it
    if [ -e "$f" ] && ! git diff --quiet -- "$f"; then
      die "$f differs from git's index; commit or restore it first (nothing was removed)"
    fi
  done
  rm -rf "$STAGE"
  mkdir -p "$STAGE" || die "cannot create $STAGE"
  mkdir -p "$CACHE" || die "cannot create $CACHE"
  local blob
  for name in "${names[@]}"; do
    blob=$(git rev-parse ":models/$name/model.safetensors") || die "git has no blob for $name"
    if [ ! -s "$CACHE/$blob.gz" ]; then
      git cat-file blob "$blob" | gzip -6 >"$CACHE/$blob.gz.part" && mv "$CACHE/$blob.gz.part" "$CACHE/$blob.gz" ||
        { rm -rf "$STAGE" "$CACHE/$blob.gz.part"; die "cannot compress models/$name/model.safetensors"; }
    fi
    ln -f "$CACHE/$blob.gz" "$STAGE/$name.safetensors.gz" 2>/dev/null ||
      cp "$CACHE/$blob.gz" "$STAGE/$name.safetensors.gz" || { rm -rf "$STAGE"; die "cannot copy into $STAGE"; }
  done
  for f in $all; do rm -f "$f"; done
  local bytes staged
  bytes=$(travel_bytes)
  staged=$(cd "$STAGE" && du -b -- *.gz | awk '{ printf "%s%s %d bytes", sep, $2, $1; sep = ", " }')
  if [ "$bytes" -gt "$LIMIT" ]; then
    unstage >/dev/null
    if [ ${#names[@]} -gt 1 ]; then
      die "$bytes bytes ($(mib "$bytes")) would travel with ${names[*]} ($staged), over the limit of $LIMIT bytes ($(mib "$LIMIT")): stage one per call, --stage ${names[0]} now and --stage ${names[1]} in a separate call (scripts/gpu-check.sh --reuse-build there); nothing is staged"
    fi
    die "$bytes bytes ($(mib "$bytes")) would travel with ${names[0]} alone ($staged), over the limit of $LIMIT bytes ($(mib "$LIMIT")): this model cannot travel in one call; make the tree or .gpu-deps/prefix smaller; nothing is staged"
  fi
  echo "gpu-stage: staged ${names[*]} ($staged); every model.safetensors removed from the working tree (--unstage restores them)"
  echo "gpu-stage: $bytes bytes ($(mib "$bytes")) would travel, limit $LIMIT ($(mib "$LIMIT")); carry [\".gpu-deps/prefix\", \"$STAGE\"]"
}

# Device side: gzip, or python3's gzip module where the binary is missing.
gunzip_to() { # GZ DEST
  if [ "${GPU_STAGE_GUNZIP:-}" != python ] && command -v gzip >/dev/null 2>&1; then
    gzip -dc -- "$1" >"$2"
  else
    python3 -c 'import gzip, shutil, sys
with gzip.open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 22)' "$1" "$2"
  fi
}

unpack() {
  local gz name dst
  for gz in "$STAGE"/*.safetensors.gz; do
    [ -e "$gz" ] || continue
    name=$(basename "$gz" .safetensors.gz)
    dst=models/$name/model.safetensors
    [ -f "models/$name/config.json" ] || die "$gz: models/$name/config.json is missing (a model folder must travel beside it)"
    gunzip_to "$gz" "$dst.part" && mv "$dst.part" "$dst" ||
      { rm -f "$dst.part"; die "$gz: cannot decompress into $dst (truncated or corrupt?)"; }
    echo "$name"
  done
}

case ${1:-} in
stage) stage "${2:-}" ;;
unstage) unstage ;;
size) bytes=$(travel_bytes) && echo "$bytes bytes ($(mib "$bytes")) would travel, limit $LIMIT ($(mib "$LIMIT"))" ;;
unpack) unpack ;;
*) echo "usage: gpu-stage.sh stage MODEL[,MODEL...] | unstage | size | unpack" >&2; exit 2 ;;
esac
