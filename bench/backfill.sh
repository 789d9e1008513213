#!/usr/bin/env bash
# Backfill throughput and memory, against zcat and a Python gzip+json
# baseline on the same seeded synthetic logs. Prints table rows (Markdown).
#   bench/backfill.sh GRANTWATCH_BINARY [FILES]
set -euo pipefail
BIN=$1
FILES=${2:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 "$HERE/gen_logs.py" "$WORK/x1" --files "$FILES" >&2
python3 "$HERE/gen_logs.py" "$WORK/x10" --files "$FILES" --copies 10 >&2
MB=$(find "$WORK/x1" -name '*.json.gz' -printf '%s\n' | awk '{s+=$1} END {printf "%.1f", s/1e6}')
RAW=$(find "$WORK/x1" -name '*.json.gz' -print0 | sort -z | xargs -0 cat | zcat | wc -c | awk '{printf "%.1f", $1/1e6}')

# best of 3 wall-clock seconds; peak RSS (KiB) of the last run in $WORK/rss
measure() {
  local best=
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    read -r secs rss <"$WORK/time"
    echo "$rss" >"$WORK/rss"
    if [ -z "$best" ] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; fi
  done
  echo "$best"
}
find "$WORK/x1" -name '*.json.gz' | sort >"$WORK/list"
zcat_s=$(measure bash -c "xargs zcat <'$WORK/list'")
gw1=$(measure "$BIN" backfill --threads 1 "$WORK/x1"); rss1=$(cat "$WORK/rss")
gw2=$(measure "$BIN" backfill --threads 2 "$WORK/x1")
gw10=$(measure "$BIN" backfill --threads 2 "$WORK/x10"); rss10=$(cat "$WORK/rss")
gw1_10=$(measure "$BIN" backfill --threads 1 "$WORK/x10"); rss1_10=$(cat "$WORK/rss")
py1=$(measure python3 "$HERE/backfill_baseline.py" "$WORK/x1" --procs 1)
py2=$(measure python3 "$HERE/backfill_baseline.py" "$WORK/x1" --procs 2)
rate() { awk "BEGIN {printf \"%.0f\", $MB / $1}"; }
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
echo "| backfill input | $FILES files, $MB MB gzip ($RAW MB JSON), ~1 % grant events, seed 13 | |"
echo "| zcat (1 core) | $(rate "$zcat_s") MB/s gzip | 1.00x |"
echo "| grantwatch backfill, 1 thread | $(rate "$gw1") MB/s gzip | $(ratio "$zcat_s" "$gw1")x zcat (target >= 0.8x) |"
echo "| grantwatch backfill, 2 threads | $(rate "$gw2") MB/s gzip | $(ratio "$gw1" "$gw2")x 1 thread (target >= 1.6x) |"
echo "| Python gzip+json, 1 process | $(rate "$py1") MB/s gzip | grantwatch 1 thread is $(ratio "$py1" "$gw1")x faster |"
echo "| Python gzip+json, 2 processes | $(rate "$py2") MB/s gzip | grantwatch 2 threads is $(ratio "$py2" "$gw2")x faster |"
echo "| backfill peak RSS, 1 thread, 1x / 10x input | $((rss1 / 1024)) / $((rss1_10 / 1024)) MiB | $(ratio "$rss1_10" "$rss1")x (target <= 1.10x) |"
echo "| backfill 10x input, 2 threads | $(awk "BEGIN {printf \"%.0f\", $MB * 10 / $gw10}") MB/s gzip, peak $((rss10 / 1024)) MiB | |"
