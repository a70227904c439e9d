#!/usr/bin/env bash
# The identity phase measured in docs/results.md ("Face references that the model uses"): a world of
# many people (seed 3: 192 people, 12 held out, 400 clips of 2-4 s), curated and encoded with the
# shipped codecs (with face boxes), then two runs from a model (default: the shipped tiny model):
# recipes/identity_self_tiny.yaml (600 steps, the window's own face crop as reference, ~7 min on 2
# cores), then recipes/identity_cross_tiny.yaml twice (1,500 steps each, references from other
# clips, ~21 min each; the second run continues the first with a fresh warm-up and cosine, as the
# shipped model was made; CROSS2=0 stops after the first).
# World, curation and encoding take ~35 min. Every step resumes when rerun.
#
#   bash scripts/train_identity_phase.sh [RUN_DIR] [INIT_MODEL]     (defaults runs/id, the shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-runs/id}"
INIT="${2:-src/facevox/assets/models/tiny}"
FV=.venv/bin/facevox
mkdir -p "$RUN"

$FV synth --out "$RUN/world" heldout_clip_fraction=0.1 min_duration=2.0 max_duration=4.0 \
  --num-people 192 --heldout-people 12 --num-clips 400 --seed 3
.venv/bin/python -c "from pathlib import Path; from facevox.demo import link_train_clips; \
print(link_train_clips(Path('$RUN/world'), Path('$RUN/train_videos')), 'train clips')"
$FV curate "$RUN/train_videos" --out "$RUN/curated" --recipe recipes/curate_synth_world.yaml
$FV encode "$RUN/curated" --out "$RUN/shards" video_codec=src/facevox/assets/codecs/video \
  windows_per_sample=3 workers=2
$FV train "$RUN/shards" --out "$RUN/train/identity_self" --recipe recipes/identity_self_tiny.yaml init="$INIT"
$FV train "$RUN/shards" --out "$RUN/train/identity_cross" --recipe recipes/identity_cross_tiny.yaml \
  init="$RUN/train/identity_self"
last=identity_cross
if [ "${CROSS2:-1}" = 1 ]; then
  $FV train "$RUN/shards" --out "$RUN/train/identity_cross2" --recipe recipes/identity_cross_tiny.yaml \
    init="$RUN/train/identity_cross"
  last=identity_cross2
fi
echo "identity phase done: $RUN/train/$last/release"
