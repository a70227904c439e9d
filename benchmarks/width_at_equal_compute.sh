#!/usr/bin/env bash
# Two model widths at equal compute: `tiny` (3.9M parameters) and `wide` (15.2M, head width 64) trained
# from random weights on the same clips and photos, concurrently, one core each, for step counts that
# take the same wall-clock time (~65 min here: tiny 5,000 steps, wide 2,000), then both sampled on the
# same held-out requests and scored against the real clips and the no-reference floor.
#
#   bash benchmarks/width_at_equal_compute.sh CLIP_SHARDS PHOTO_SHARDS BENCH OUT [TINY_STEPS WIDE_STEPS]
#
# CLIP_SHARDS: `facevox encode` output; PHOTO_SHARDS: `facevox encode-photos` output with the same
# codecs; BENCH: `facevox eval --build-benchmark` output (requests.jsonl, real/, refs/heldout).
# Every step resumes when rerun. Validation against time: OUT/{tiny,wide}/metrics.jsonl; samples:
# OUT/eval-{tiny,wide}/metrics.json (and OUT/eval-floor-* without references).
set -euo pipefail
CLIPS="$1"; PHOTOS="$2"; BENCH="$3"; OUT="$4"; TINY_STEPS="${5:-5000}"; WIDE_STEPS="${6:-2000}"
FV=.venv/bin/facevox
mkdir -p "$OUT"
train() {  # size steps
  $FV train "$CLIPS" --out "$OUT/$1" --recipe recipes/scratch_identity_tiny.yaml photos="$PHOTOS" \
    size="$1" steps="$2" threads=1 >> "$OUT/$1.log" 2>&1
}
train tiny "$TINY_STEPS" & train wide "$WIDE_STEPS" & wait
for size in tiny wide; do
  for refs in with floor; do
    flags=(--steps 12 video.faces=1.5 audio.voices=8); [ "$refs" = floor ] && flags+=(--no-references)
    [ -f "$OUT/gen-$refs-$size/done" ] || { $FV generate --model "$OUT/$size/release" \
      --requests "$BENCH/requests.jsonl" --out "$OUT/gen-$refs-$size" "${flags[@]}" && touch "$OUT/gen-$refs-$size/done"; }
  done
  [ -f "$OUT/eval-$size/metrics.json" ] || $FV eval "$OUT/gen-with-$size" --out "$OUT/eval-$size" \
    --floor "$OUT/gen-floor-$size" --ceiling "$BENCH/real" --references "$BENCH/refs/heldout" --no-asr
done
