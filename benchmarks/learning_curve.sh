#!/usr/bin/env bash
# The learning curve of a training run, in what a viewer sees: for each kept checkpoint, its EMA
# weights exported as a release, the benchmark's requests generated from them, and the clips scored
# (Haar face detection rate, dlib same-person rate, voice similarity, lip sync) against the real clips.
#
#   bash benchmarks/learning_curve.sh RUN_DIR CHECKPOINTS_DIR SHARDS BENCH OUT RECIPE [FLAGS]
#
# RUN_DIR: the training run (its config.yaml); CHECKPOINTS_DIR: a folder of step-NNNNNNN checkpoints
# copied from it (the trainer keeps the last two); BENCH: `facevox eval --build-benchmark` output;
# FLAGS: extra `facevox generate` flags (e.g. --no-references for a base model, which has none).
# Prints one JSON line per checkpoint: step, wall-clock training minutes, and the aggregate figures.
set -euo pipefail
RUN="$1"; CKPTS="$2"; SHARDS="$3"; BENCH="$4"; OUT="$5"; RECIPE="$6"; shift 6
FV=.venv/bin/facevox
mkdir -p "$OUT"
for ckpt in "$CKPTS"/step-*; do
  step=$((10#${ckpt##*step-}))
  dest="$OUT/step-$step"
  if [ ! -f "$dest/release/model/model.safetensors" ]; then
    mkdir -p "$dest/checkpoints"
    cp -r "$ckpt" "$dest/checkpoints/"
    # a run resumed at its last step trains nothing and exports its EMA weights as the release
    $FV train "$SHARDS" --out "$dest" --recipe "$RECIPE" steps="$step" eval_every=100000 \
      $(.venv/bin/python -c "import yaml,sys; c=yaml.safe_load(open('$RUN/config.yaml')); print(' '.join(f'{k}={c[k]}' for k in ('batch_size','warmup','ema_decay','lr','size')))") \
      >/dev/null 2>&1
  fi
  [ -f "$dest/gen/done" ] || { $FV generate --model "$dest/release" --requests "$BENCH/requests.jsonl" \
      --out "$dest/gen" --steps 12 "$@" >/dev/null 2>&1 && touch "$dest/gen/done"; }
  [ -f "$dest/eval/metrics.json" ] || $FV eval "$dest/gen" --ceiling "$BENCH/real" --out "$dest/eval" --no-asr >/dev/null 2>&1
  .venv/bin/python - "$dest/eval/metrics.json" "$step" "$RUN" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
agg = m["sets"]["generated"]["aggregate"]
import yaml
cfg = yaml.safe_load(open(f"{sys.argv[3]}/config.yaml"))
seconds, last = 0.0, 0  # training time to this step, from the logged throughput (evaluation not counted)
for line in open(f"{sys.argv[3]}/metrics.jsonl"):
    r = json.loads(line)
    if "samples_per_s" in r and r["step"] <= int(sys.argv[2]):
        seconds += (r["step"] - last) * cfg["batch_size"] / r["samples_per_s"]
        last = r["step"]
minutes = round(seconds / 60, 1)
keep = ("face_detect_rate", "face_same_rate", "face_sim", "voice_sim", "sync_conf")
print(json.dumps({"step": int(sys.argv[2]), "minutes": minutes, **{k: agg.get(k) for k in keep}}))
EOF
done
