"""Copy a finished stage-3 run's release model into the package, with its PROVENANCE.json.

    .venv/bin/python scripts/ship_model.py runs/shipped            (the folder train_shipped_model.sh used)
    .venv/bin/python scripts/ship_model.py runs/id --identity-phase (after train_identity_phase.sh)
    .venv/bin/python scripts/ship_model.py runs/id --add-run identity_full (one more run from the shipped model)
    .venv/bin/python scripts/ship_model.py runs/placed --train runs/placed --add-run ship_self --add-run ship_cross
        (a chain of runs: the first from the shipped model, each next from the one before)
    .venv/bin/python scripts/ship_model.py runs/id --scratch runs/placed/tiny (one run from random weights)

``--identity-phase`` ships the last of RUN/train/identity_{self,cross,cross2} instead, continuing the shipped model's
PROVENANCE.json: its stages gain the two identity runs, and ``identity_phase`` records their world
and shards (the model's history then spans two worlds, neither of them the demo's).

PROVENANCE.json records, per stage, the resolved training config, the held-out loss at the first and
last evaluation, and the identity diagnostic (``ref_gain_*``: held-out loss without a modality's
references minus with them), read from each run's ``config.yaml`` and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import yaml

from facevox.training.metrics import read_metrics

STAGES = ("base", "stage1", "stage2", "stage3")
ASSETS = Path(__file__).resolve().parent.parent / "src" / "facevox" / "assets"
DEST = ASSETS / "models" / "tiny"


def stage_record(run: Path) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    evals = [r for r in read_metrics(run) if "val_loss" in r]
    if not evals:
        raise SystemExit(f"{run} has no held-out evaluation in metrics.jsonl")
    keep = (
        "step",
        "val_loss",
        "val_video",
        "val_audio",
        "ref_gain_video",
        "ref_gain_audio",
        "val_video_face",
        "ref_gain_video_face",
    )
    train = [r for r in read_metrics(run) if "samples_per_s" in r]
    return {
        "strategy": cfg["strategy"],
        "steps": cfg["steps"],
        "config": cfg,
        "first_eval": {k: evals[0][k] for k in keep if k in evals[0]},
        "last_eval": {k: evals[-1][k] for k in keep if k in evals[-1]},
        "samples_per_s_median": sorted(r["samples_per_s"] for r in train)[len(train) // 2] if train else None,
    }


def ship_video_codec(folder: Path, world_cfg: dict, commit: str) -> None:
    """Replace the package's video codec with ``folder``'s (config + weights + PROVENANCE.json)."""
    dest = ASSETS / "codecs" / "video"
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    fit = json.loads((folder / "fit.json").read_text()) if (folder / "fit.json").is_file() else None
    metrics = read_metrics(folder)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(folder / name, dest / name)
    provenance = {
        "made_by": "facevox train-codec video --recipe recipes/codec_video_pca_tiny.yaml (scripts/train_shipped_model.sh)",
        "world": {
            k: world_cfg[k] for k in ("seed", "num_people", "heldout_people", "num_clips") if k in world_cfg
        },
        "config": cfg,
        "fit": fit,
        "refiner_steps": metrics[-1]["step"] if metrics else 0,
        "last_losses": metrics[-1] if metrics else None,
        "commit": commit,
        "date": date.today().isoformat(),
    }
    (dest / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {dest}")


# the identity phase's runs in order; a later one is optional (the phase ships its last run present)
IDENTITY_STAGES = ("identity_self", "identity_cross", "identity_cross2")


def check_continues_shipped(cfg: dict, provenance: dict, what: str) -> dict:
    """A run's resolved config must start from the shipped model and train on shards of its codecs;
    returns the shards' encode.json."""
    if Path(cfg["init"]).resolve() != DEST.resolve():
        raise SystemExit(f"{what} started from {cfg['init']}, not from the shipped model {DEST}")
    encode = json.loads((Path(cfg["data"]) / "encode.json").read_text())
    if encode["codec_fingerprints"] != provenance["codec_fingerprints"]:
        raise SystemExit(f"{cfg['data']} was encoded with other codecs than the shipped model's")
    return encode


def ship_identity_phase(train: Path, world: Path, commit: str) -> None:
    """Ship the identity phase's last run, appending the phase to the shipped PROVENANCE.json."""
    runs = [s for s in IDENTITY_STAGES if (train / s / "config.yaml").is_file()]
    if runs != list(IDENTITY_STAGES[: len(runs)]) or len(runs) < 2:
        raise SystemExit(
            f"{train} holds identity runs {runs}; expected {IDENTITY_STAGES[:2]} and optionally the rest"
        )
    release = train / runs[-1] / "release" / "model" / "model.safetensors"
    if not release.is_file():
        raise SystemExit(f"no finished identity phase at {release}")
    provenance = json.loads((DEST / "PROVENANCE.json").read_text())
    first = yaml.safe_load((train / IDENTITY_STAGES[0] / "config.yaml").read_text())
    encode = check_continues_shipped(first, provenance, "the identity phase")
    if "identity_phase" in provenance:  # the phase shipped again: its earlier records are replaced
        provenance["stages"] = provenance["stages"][: -len(provenance["identity_phase"]["runs"])]
    provenance["stages"] += [stage_record(train / s) for s in runs]
    provenance["identity_phase"] = {
        "made_by": "scripts/train_identity_phase.sh, then scripts/ship_model.py --identity-phase",
        "runs": runs,
        "world": yaml.safe_load((world / "config.yaml").read_text()),
        "shards": encode["counts"],
        "commit": commit,
        "date": date.today().isoformat(),
    }
    shutil.copyfile(release, DEST / "model.safetensors")
    (DEST / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {DEST}")


def ship_added_runs(runs: list[Path], commit: str) -> None:
    """Ship the last of RUNS, a chain of runs from the shipped model (the first starts from it, each next
    from the one before), appending them to the shipped PROVENANCE.json's stages and identity phase
    (shipping the same chain again replaces its records)."""
    release = runs[-1] / "release" / "model" / "model.safetensors"
    if not release.is_file():
        raise SystemExit(f"no finished run at {release}")
    cfgs = [yaml.safe_load((run / "config.yaml").read_text()) for run in runs]
    provenance = json.loads((DEST / "PROVENANCE.json").read_text())
    phase = provenance.get("identity_phase")
    if phase is None:
        raise SystemExit(
            "the shipped model has no identity phase to continue (ship it with --identity-phase)"
        )
    check_continues_shipped(cfgs[0], provenance, str(runs[0]))
    for prev, run, cfg in zip(runs, runs[1:], cfgs[1:], strict=False):
        if Path(cfg["init"]).resolve() not in (prev.resolve(), (prev / "release").resolve()):
            raise SystemExit(f"{run} started from {cfg['init']}, not from {prev}")
    names = [run.name for run in runs]
    while phase["runs"] and phase["runs"][-1] in names:  # shipped again: drop the earlier records
        phase["runs"].pop()
        provenance["stages"].pop()
    for run, name in zip(runs, names, strict=True):
        provenance["stages"].append(stage_record(run))
        phase["runs"].append(name)
        phase.setdefault("added", {})[name] = {
            "commit": commit,
            "date": date.today().isoformat(),
            "run": str(run),
        }
    shutil.copyfile(release, DEST / "model.safetensors")
    (DEST / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {DEST}")


def ship_scratch_run(run: Path, world: Path, commit: str) -> None:
    """Ship RUN, one run from random weights (clips, optionally photos), with a PROVENANCE.json of its
    own: nothing of the model shipped before is kept."""
    release = run / "release" / "model" / "model.safetensors"
    if not release.is_file():
        raise SystemExit(f"no finished run at {release}")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    if cfg["init"]:
        raise SystemExit(f"{run} started from {cfg['init']}: --scratch ships runs from random weights")
    encode = json.loads((Path(cfg["data"]) / "encode.json").read_text())
    photos = None
    if cfg.get("photos"):
        photo_encode = json.loads((Path(cfg["photos"]) / "encode.json").read_text())
        if photo_encode["codec_fingerprints"] != encode["codec_fingerprints"]:
            raise SystemExit(f"{cfg['photos']} was encoded with other codecs than {cfg['data']}")
        photos = {
            "shards": cfg["photos"],
            "counts": photo_encode.get("counts"),
            "share": cfg.get("photo_share"),
        }
    provenance = {
        "made_by": f"facevox train {cfg['data']} --out {run} (config below), then scripts/ship_model.py --scratch",
        "world": yaml.safe_load((world / "config.yaml").read_text()),
        "shards": encode["counts"],
        "photos": photos,
        "codec_fingerprints": encode["codec_fingerprints"],
        "stages": [stage_record(run)],
        "commit": commit,
        "date": date.today().isoformat(),
    }
    pipeline = json.loads((run / "release" / "pipeline.json").read_text())
    pipeline["trained_with"] = {k: v for k, v in pipeline.get("trained_with", {}).items() if k != "data"}
    shutil.copyfile(release, DEST / "model.safetensors")
    (DEST / "pipeline.json").write_text(json.dumps(pipeline, indent=1) + "\n")
    (DEST / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {DEST}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="RUN folder: RUN/train/{base,stage1,stage2,stage3}, RUN/world")
    p.add_argument("--train", type=Path, help="training runs folder (default RUN/train)")
    p.add_argument("--world", type=Path, help="the world the data came from (default RUN/world)")
    p.add_argument("--video-codec", type=Path, help="also ship this video codec folder (a train-codec run)")
    p.add_argument(
        "--identity-phase", action="store_true", help="ship the identity phase's last run (see above)"
    )
    p.add_argument(
        "--add-run",
        metavar="NAME",
        action="append",
        help="ship RUN/train/NAME, trained from the shipped model (see above); repeated: a chain of runs, "
        "each from the one before, the last shipped",
    )
    p.add_argument(
        "--scratch", type=Path, metavar="RUN_DIR", help="ship one run from random weights (see above)"
    )
    args = p.parse_args()
    train, world = args.train or args.run / "train", args.world or args.run / "world"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    if args.scratch:
        ship_scratch_run(args.scratch, world, commit.strip())
        return
    if args.add_run:
        ship_added_runs([train / name for name in args.add_run], commit.strip())
        return
    if args.identity_phase:
        ship_identity_phase(train, world, commit.strip())
        return
    release = train / "stage3" / "release" / "model" / "model.safetensors"
    if not release.is_file():
        raise SystemExit(f"no finished stage 3 at {release}")
    world_cfg = yaml.safe_load((world / "config.yaml").read_text())
    shards = Path(yaml.safe_load((train / "base" / "config.yaml").read_text())["data"])
    provenance = {
        "made_by": "scripts/train_shipped_model.sh, then scripts/ship_model.py",
        "world": world_cfg,
        "shards": json.loads((shards / "encode.json").read_text())["counts"],
        # the codecs whose latents the model was trained on (facevox.codecs.loading.codec_fingerprint)
        "codec_fingerprints": json.loads((shards / "encode.json").read_text())["codec_fingerprints"],
        # base1: the first base phase when the base ran in two (train_shipped_model.sh)
        "stages": [
            stage_record(train / s) for s in ("base1", *STAGES) if (train / s / "config.yaml").is_file()
        ],
        "commit": commit.strip(),
        "date": date.today().isoformat(),
    }
    if args.video_codec:
        ship_video_codec(args.video_codec, world_cfg, commit.strip())
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release, DEST / "model.safetensors")
    # generation settings (frame size, rate, shift, codec fingerprints) for `facevox generate` with no --model
    pipeline = json.loads((release.parent.parent / "pipeline.json").read_text())
    pipeline["trained_with"] = {k: v for k, v in pipeline.get("trained_with", {}).items() if k != "data"}
    (DEST / "pipeline.json").write_text(json.dumps(pipeline, indent=1) + "\n")
    (DEST / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
