#!/usr/bin/env bash
# Can the tiny model render a person at face-recogniser precision, and what does it cost? Every
# parameter of a model (default: the shipped one) trained on N training windows (recipes/memorise_tiny.yaml),
# in chunks, each checkpoint sampled on those windows' own requests (with and without references)
# and scored against the real clips by scripts/sample_and_score.sh (docs/results.md, "What rendering
# a person costs").
#
#   bash benchmarks/memorisation_curve.sh SET STEPS...      e.g.  runs/memo/set32 1200 2400
# SET: written by benchmarks/memorisation_set.py; STEPS: cumulative step counts. One thread each
# (THREADS), so two sets run side by side on two cores. Every step resumes when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=$1; shift
FV=.venv/bin/facevox
INIT="${INIT:-src/facevox/assets/models/tiny}"
export OMP_NUM_THREADS="${THREADS:-1}"
prev=$INIT; done_steps=0
for total in "$@"; do
  run=$SET/train-$total
  [ -f "$run/release/pipeline.json" ] || $FV train "$SET/shards" --out "$run" --recipe recipes/memorise_tiny.yaml \
    init="$prev" steps=$((total - done_steps)) threads="$OMP_NUM_THREADS" checkpoint_every=400
  bash scripts/sample_and_score.sh "$run/release" "$SET" "$SET/score-$total"
  prev=$run/release; done_steps=$total
done
