"""``facevox demo OUT_DIR``: the main job on the embedded default, end to end on one machine.

Runs every stage that facevox has so far, each reading the previous stage's files:

1. ``synth``: a small synthetic talking world (people, clips, ground truth).
2. ``bars``: the recogniser bars on that world (face detection, face and voice identity).

Later stages (curate, encode, train, generate, eval) join this list as they land.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from facevox.synth.config import SynthConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    world: SynthConfig = field(
        default_factory=lambda: SynthConfig(num_people=16, heldout_people=4, num_clips=24, max_duration=5.0)
    )
    bar_voices: int = 50  # voices in the resemblyzer verification bar
    bar_faces: int = 50  # fresh identities in the dlib verification bar


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", help="demo folder (created, or resumed)")
    p.add_argument("--recipe", help="YAML with DemoConfig fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. world.num_clips=40")


def run(args: argparse.Namespace) -> int:
    from facevox.config import load, write_resolved
    from facevox.io.atomic import atomic_write_json
    from facevox.synth.bars import face_detection_recall, fresh_face_eer
    from facevox.synth.voice_bar import voice_verification_eer
    from facevox.synth.world import generate_world

    cfg = load(DemoConfig, args.recipe, args.overrides)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out)
    world = out / "world"
    report: dict[str, object] = {}
    steps = [
        ("synth", lambda: generate_world(cfg.world, world)),
        ("face detection bar", lambda: face_detection_recall(world)),
        ("face identity bar", lambda: fresh_face_eer(num_identities=cfg.bar_faces, cfg=cfg.world)),
        ("voice identity bar", lambda: voice_verification_eer(num_voices=cfg.bar_voices)),
    ]
    t0 = time.perf_counter()
    for name, step in tqdm(steps, desc="demo", unit="step"):
        t = time.perf_counter()
        report[name] = step()
        log.info("%s done in %.1f s", name, time.perf_counter() - t)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "report.json", report)
    log.info("demo report: %s\n%s", out / "report.json", json.dumps(report, indent=1, default=str))
    return 0
