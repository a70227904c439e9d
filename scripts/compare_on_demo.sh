#!/usr/bin/env bash
# One model through the demo on another demo run's world, curation and shards, so models compare on
# the same held-out people and references (a fresh `make demo` renders its world again, and one
# model's figures move by ~0.1 between worlds; docs/results.md).
#
#   bash scripts/compare_on_demo.sh NAME MODEL [key=value ...]    (-> runs/dd-NAME, its report.json)
#   e.g. bash scripts/compare_on_demo.sh full runs/id/train/identity_full/release benchmark_caption=plain
# BASE (default runs/demo) is the demo run whose world is reused; MODEL is `init` (or "shipped").
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1; MODEL=$2; shift 2
BASE="${BASE:-runs/demo}"
OUT="runs/dd-$NAME"
mkdir -p "$OUT"
for x in world train_videos curated shards; do
  [ -e "$OUT/$x" ] || cp -a "$BASE/$x" "$OUT/$x"
done
.venv/bin/facevox demo --out "$OUT" init="$MODEL" "$@"
echo "$OUT/report.json"
