#!/usr/bin/env bash
# One model sampled on a benchmark with and without references, then scored between the no-reference
# floor and the real clips (docs/results.md). Every step resumes when rerun.
#
#   bash scripts/sample_and_score.sh MODEL BENCH OUT [generate key=value ...]
#
# MODEL: a release or model folder; BENCH: `facevox eval --build-benchmark` output (requests.jsonl,
# real/, refs/heldout); OUT: gen-with/, gen-floor/, eval/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$1"; BENCH="$2"; OUT="$3"; shift 3
FV=.venv/bin/facevox
for refs in with floor; do
  flags=(--steps 12 video.faces=1.5 audio.voices=8 "$@"); [ "$refs" = floor ] && flags+=(--no-references)
  [ -f "$OUT/gen-$refs/done" ] || { $FV generate --model "$MODEL" --requests "$BENCH/requests.jsonl" \
    --out "$OUT/gen-$refs" "${flags[@]}" && touch "$OUT/gen-$refs/done"; }
done
[ -f "$OUT/eval/metrics.json" ] || $FV eval "$OUT/gen-with" --out "$OUT/eval" --floor "$OUT/gen-floor" \
  --ceiling "$BENCH/real" --references "$BENCH/refs/heldout" --no-asr
