#!/usr/bin/env bash
# Lambda artifact sizes (issue 13: at most 8 MiB each, the bootstrap and its
# zip as `make release` packs it). Prints table rows (Markdown).
#   bench/artifacts.sh [LAMBDA_DIR]    (default target/lambda, from make lambda-artifacts)
set -euo pipefail
DIR=${1:-target/lambda}
LIMIT=8388608
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
shopt -s nullglob
found=0
for bootstrap in "$DIR"/*/bootstrap; do
  found=1
  name=$(basename "$(dirname "$bootstrap")")
  arch=$(file -b "$bootstrap" | grep -o -m1 "ARM aarch64\|x86-64" | head -1 || true)
  (cd "$(dirname "$bootstrap")" && zip -q -X "$WORK/$name.zip" bootstrap)
  raw=$(stat -c %s "$bootstrap")
  zipped=$(stat -c %s "$WORK/$name.zip")
  verdict() { if [ "$1" -le "$LIMIT" ]; then echo "within 8 MiB"; else echo "OVER 8 MiB by $(( ($1 - LIMIT) / 1024 )) KiB"; fi; }
  echo "| artifact $name ($arch) | bootstrap $raw bytes ($((raw / 1024)) KiB), zip $zipped bytes ($((zipped / 1024)) KiB) | bootstrap $(verdict "$raw"), zip $(verdict "$zipped") |"
done
if [ "$found" = 0 ]; then
  echo "artifacts: no $DIR/*/bootstrap (run make lambda-artifacts)" >&2
  exit 1
fi
