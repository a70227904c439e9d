#!/usr/bin/env bash
# Reproduce the tiny model shipped in src/facevox/assets/models/tiny (and the tiny video codec it was
# trained with) from nothing: a synthetic world of its own people -> curate -> encode -> base
# pre-training -> stages 1, 2, 3 -> release. Every step resumes when rerun. On 2 CPU cores this takes
# about 3 h (base 4,500 steps ~75 min then 5,000 more at half the rate ~65-80 min, stages 300 steps
# each ~16 min, world, codec, curation and encoding ~15 min); the figures of the run that made the
# shipped weights are in its PROVENANCE.json. (The shipped base's first 4,500 steps ran before the
# seconds clock and the turn embedding existed and were moved onto them when the second phase began.)
#
#   bash scripts/train_shipped_model.sh [RUN_DIR]       (default runs/shipped)
#
# Variables: BASE_STEPS, BASE2_STEPS (the second base phase), STAGE_STEPS (STAGE3_STEPS for stage 3 alone), the world's size NUM_PEOPLE / HELDOUT_PEOPLE / NUM_CLIPS, and
# SHIP=0 to stop before copying the release into the package. The README's larger-world stage figures:
#   NUM_PEOPLE=128 HELDOUT_PEOPLE=12 NUM_CLIPS=440 SHIP=0 bash scripts/train_shipped_model.sh runs/big
# (and STAGE3_STEPS=1600 for the longer stage 3 there)
#
# The world's seed (1) differs from `facevox demo`'s (2), so the demo's people were never seen here.
# The shipped weights then went through the identity phase of scripts/train_identity_phase.sh (a
# world of its own, seed 3) and scripts/ship_model.py --identity-phase; PROVENANCE.json lists both.
# The shipped audio codec is the one in the package (its decoder was fine-tuned with
# recipes/codec_audio_decoder_tiny.yaml); the video codec is fitted here and shipped with the model.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-runs/shipped}"
FV=.venv/bin/facevox
BASE_STEPS="${BASE_STEPS:-4500}"
BASE2_STEPS="${BASE2_STEPS:-5000}"
STAGE_STEPS="${STAGE_STEPS:-300}"
STAGE3_STEPS="${STAGE3_STEPS:-$STAGE_STEPS}"  # stage 3 alone
NUM_PEOPLE="${NUM_PEOPLE:-64}"  # the world's size: people (HELDOUT_PEOPLE of them held out) and clips
HELDOUT_PEOPLE="${HELDOUT_PEOPLE:-6}"
NUM_CLIPS="${NUM_CLIPS:-220}"
SHIP="${SHIP:-1}"
mkdir -p "$RUN"

$FV synth --out "$RUN/world" heldout_clip_fraction=0.1 --num-people "$NUM_PEOPLE" --heldout-people "$HELDOUT_PEOPLE" \
  --num-clips "$NUM_CLIPS" --seed 1
.venv/bin/python -c "from pathlib import Path; from facevox.demo import link_train_clips; \
print(link_train_clips(Path('$RUN/world'), Path('$RUN/train_videos')), 'train clips')"

# The video codec: a closed-form PCA patch code + conv refiner decoder (recipes/codec_video_pca_tiny.yaml,
# ~10 min); the model below is trained on its latents.
if [ ! -f "$RUN/codec-video/model.safetensors" ]; then
  $FV train-codec video "$RUN/world" --out "$RUN/codec-video" --recipe recipes/codec_video_pca_tiny.yaml
fi

$FV curate "$RUN/train_videos" --out "$RUN/curated" --recipe recipes/curate_synth_world.yaml
$FV encode "$RUN/curated" --out "$RUN/shards" video_codec="$RUN/codec-video" windows_per_sample=3 workers=2

$FV train "$RUN/shards" --out "$RUN/train/base1" --recipe recipes/base_tiny.yaml \
  steps="$BASE_STEPS" batch_size=8 warmup=200 ema_decay=0.998 eval_every=500 checkpoint_every=250 log_every=50
# the base continued at half the learning rate (a second cosine), as the shipped model was made
$FV train "$RUN/shards" --out "$RUN/train/base" --recipe recipes/base_tiny.yaml init="$RUN/train/base1" \
  steps="$BASE2_STEPS" batch_size=8 lr=5e-4 warmup=100 ema_decay=0.998 eval_every=500 checkpoint_every=250 log_every=50
prev="$RUN/train/base"
for stage in stage1 stage2 stage3; do
  steps="$STAGE_STEPS"
  if [ "$stage" = stage3 ]; then steps="$STAGE3_STEPS"; fi
  $FV train "$RUN/shards" --out "$RUN/train/$stage" --recipe "recipes/${stage}_tiny.yaml" init="$prev" \
    steps="$steps" batch_size=8 warmup=20 ema_decay=0.99 eval_every=150 checkpoint_every=150 log_every=25
  prev="$RUN/train/$stage"
done
if [ "$SHIP" = 1 ]; then
  # -> src/facevox/assets/models/tiny and assets/codecs/video (+ PROVENANCE.json each)
  .venv/bin/python scripts/ship_model.py "$RUN" --video-codec "$RUN/codec-video"
fi
