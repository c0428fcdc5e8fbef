#!/usr/bin/env bash
# decode-beyond-memory.sh - decode a checkpoint that may not fit in memory and
# watch what the kernel does: the bytes per token and bandwidth bound
# (`mtpbench inspect`), then `generate` with the page cache dropped first (as
# root; otherwise it says so and starts warm), sampling every 5 s the
# process's disk reads (/proc/PID/io read_bytes: mmap page-ins included), its
# resident memory and its major faults. results/larger-than-memory-*.txt.
#
#   scripts/decode-beyond-memory.sh MODEL_DIR [NEW_TOKENS] [THREADS]
set -uo pipefail
model=${1:?usage: decode-beyond-memory.sh MODEL_DIR [NEW_TOKENS] [THREADS]}
n=${2:-24}
threads=${3:-2}
bin=${MTPBENCH:-$(dirname "$0")/../build/mtpbench}
err=${TMPDIR:-/tmp}/decode-beyond-memory.$$.err
free -b | head -2
du -b -c "$model"/*.safetensors | tail -1 | awk '{printf "checkpoint: %.2f GiB\n", $1 / 2^30}'
"$bin" inspect "$model" 2>&1 | grep -E "active per token|triad" | head -4
sync
echo 3 2>/dev/null > /proc/sys/vm/drop_caches || echo "(page cache not dropped: not root)"
start=$(date +%s.%N)
"$bin" generate --model "$model" --prompt-ids 11,12,13,14,15,16,17,18 -n "$n" \
    --threads "$threads" > /dev/null 2> "$err" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    t=$(echo "$(date +%s.%N) - $start" | bc)
    read_b=$(awk '/^read_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null)
    rss_k=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    faults=$(awk '{print $12}' "/proc/$pid/stat" 2>/dev/null)
    printf 't %6.1f s  read %6.2f GB  rss %6.2f GiB  major faults %s\n' "$t" \
        "$(echo "${read_b:-0} / 10^9" | bc -l)" "$(echo "${rss_k:-0} / 2^20" | bc -l)" "${faults:-0}"
    sleep 5
done
wait "$pid"
rc=$?
printf 'wall %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
tail -2 "$err"
rm -f "$err"
exit "$rc"
