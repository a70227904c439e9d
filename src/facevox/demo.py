"""``facevox demo OUT_DIR``: the whole system end to end on the embedded default, on one machine.

Each step reads the previous step's files and resumes if its outputs exist:

1. ``synth``: a small synthetic talking world (people split by identity).
2. ``curate``: curation of the *train-split* clips only (held-out people stay unseen).
3. ``encode``: latent shards with the tiny codecs shipped in the package.
4. ``train``: stages 1, 2 and 3 of the ``tiny`` model, each from the last, starting from ``init``:
   by default the tiny model shipped in the package (trained by ``scripts/train_shipped_model.sh`` on
   a world of *other* people: the demo's world seed differs), or, with ``init=""``, from a base
   pre-training from random weights run here first.
5. ``benchmark``: requests + real clips for held-out people (single and multi-person).
6. ``generate``: the benchmark with references, and without (the no-reference floor).
7. ``eval``: generated vs floor vs real held-out clips (the ceiling).
8. ``report``: ``report.html`` (videos, loss curves, metrics) and ``report.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from facevox.cli_conventions import add_out, out_folder
from facevox.curate.config import CurateConfig, ReferenceConfig
from facevox.data.encode import EncodeConfig
from facevox.pipeline.pipeline import AudioGuidanceScales, GenerateConfig
from facevox.synth.config import SynthConfig
from facevox.training.config import TrainConfig
from facevox.training.objective import ObjectiveConfig

log = logging.getLogger(__name__)


def _stage(strategy: str, steps: int, lr: float) -> TrainConfig:
    # the objective of recipes/{base,stage*}_tiny.yaml, the shipped model's: high-noise emphasis (shift
    # 3, a uniform share, 5 % at sigma 1; the release's pipeline.json takes the shift for sampling), one guidance variant
    # per sample, and, in the identity stages, half the reference samples without their caption (in a
    # small world the caption alone names the training clip, and the references go unused)
    objective = ObjectiveConfig(
        shift=3.0,
        uniform_fraction=0.2,
        max_sigma_fraction=0.05,
        dropout="nested",
        nested_probs=(0.1, 0.1, 0.1, 0.7),
        drop_text=0.0 if strategy == "base" else 0.5,
    )
    return TrainConfig(
        objective=objective,
        strategy=strategy,
        size="tiny",
        steps=steps,
        batch_size=4,
        lr=lr,
        warmup=10,
        eval_every=max(1, steps // 3),
        checkpoint_every=max(1, steps // 3),
        log_every=5,
    )


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    # seed 2: people that neither the shipped codecs (seed-0 and seed-1 worlds) nor the shipped
    # model (seed 1) have seen
    world: SynthConfig = field(
        default_factory=lambda: SynthConfig(
            seed=2, num_people=16, heldout_people=4, num_clips=40, max_duration=5.0
        )
    )
    curate: CurateConfig = field(
        default_factory=lambda: CurateConfig(references=ReferenceConfig(same_person_distance=0.3))
    )
    encode: EncodeConfig = field(default_factory=lambda: EncodeConfig(workers=2))
    # where stage 1 starts: "shipped" (the package's tiny model), a model / run folder, or "" for a
    # base pre-training from random weights here (``base`` below; minutes of CPU learn little)
    init: str = "shipped"
    base: TrainConfig = field(default_factory=lambda: _stage("base", 300, 1e-3))
    stage1: TrainConfig = field(default_factory=lambda: _stage("stage1", 40, 5e-4))
    stage2: TrainConfig = field(default_factory=lambda: _stage("stage2", 40, 5e-4))
    stage3: TrainConfig = field(default_factory=lambda: _stage("stage3", 40, 3e-4))
    benchmark_clips: int = 6  # held-out clips to generate (alternating single / multi-person)
    benchmark_duration: float = 1.0  # seconds per generated clip: the 1-s window the tiny model is trained on
    # benchmark captions: "described" (scene and each person's colours, as training captions) or "plain"
    benchmark_caption: str = "described"
    # voice guidance 8 (the pipeline's default is 1.5): chosen on the shipped model's own held-out
    # people (seed-1 world, 12 clips; speaker similarity over the no-reference floor +0.006 / +0.057 /
    # +0.098 at 1.5 / 4 / 8, README), not on the demo's people
    generate: GenerateConfig = field(
        default_factory=lambda: GenerateConfig(steps=12, audio=AudioGuidanceScales(voices=8.0))
    )
    eval_asr: bool = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, "demo folder (created, or resumed)", legacy_positional=True)
    p.add_argument("--recipe", help="YAML with DemoConfig fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. base.steps=300 world.num_clips=60")


def link_train_clips(world: Path, dest: Path) -> int:
    """Symlink the world's train-split videos into ``dest`` (curation never sees held-out people)."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for gt in sorted((world / "ground_truth" / "clips").glob("*.json")):
        if json.loads(gt.read_text())["split"] != "train":
            continue
        link = dest / f"{gt.stem}.mp4"
        if not link.exists():
            link.symlink_to((world / "videos" / f"{gt.stem}.mp4").resolve())
        n += 1
    return n


def _generate(
    release: Path, requests: Path, out: Path, config: GenerateConfig, *, references: bool
) -> dict[str, Any]:
    from facevox.pipeline import FacevoxPipeline
    from facevox.pipeline.request import read_requests

    pipe = FacevoxPipeline.from_pretrained(release)
    reqs = [
        dataclasses.replace(r, use_faces=references, use_voices=references) for r in read_requests(requests)
    ]
    times = []
    for r in reqs:
        pipe.check(r)
    for r in tqdm(reqs, desc="generate" + ("" if references else " (no references)"), unit="clip"):
        if (out / f"{r.name}.json").is_file():
            continue
        res = pipe(r, out, config=config)
        times.append(res.sidecar["timings"]["total_s"])
    return {
        "clips": len(reqs),
        "made": len(times),
        "seconds_per_clip": sum(times) / len(times) if times else None,
    }


def run(args: argparse.Namespace) -> int:
    from facevox.config import load, write_resolved
    from facevox.curate.pipeline import curate
    from facevox.data.encode import encode
    from facevox.evaluation.benchmark import build_benchmark
    from facevox.evaluation.metrics import EvalConfig
    from facevox.evaluation.suite import evaluate
    from facevox.io.atomic import atomic_write_json
    from facevox.synth.world import generate_world
    from facevox.training.trainer import train

    cfg = load(DemoConfig, args.recipe, args.overrides)
    out = Path(out_folder(args, "demo"))
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out)
    world, curated, shards, bench = out / "world", out / "curated", out / "shards", out / "benchmark"
    runs = {s: out / "train" / s for s in ("base", "stage1", "stage2", "stage3")}
    report: dict[str, Any] = {"steps": {}}

    def train_stage(name: str, prev: str) -> dict[str, Any]:
        tc = dataclasses.replace(getattr(cfg, name), data=str(shards), out=str(runs[name]), init=prev)
        return train(tc)

    if cfg.init == "shipped":
        from facevox.models.shipped import default_model_dir

        start = str(default_model_dir())
    else:
        start = cfg.init
    train_steps: list[tuple[str, Callable[[], Any]]] = (
        [] if start else [("train base", lambda: train_stage("base", ""))]
    )
    first_init = start or str(runs["base"])

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("synth", lambda: generate_world(cfg.world, world)),
        (
            "curate",
            lambda: (
                link_train_clips(world, out / "train_videos"),
                curate(
                    dataclasses.replace(cfg.curate, input_dir=str(out / "train_videos"), out_dir=str(curated))
                ),
            )[1],
        ),
        ("encode", lambda: encode(cfg.encode, curated, shards)),
        *train_steps,
        ("train stage1", lambda: train_stage("stage1", first_init)),
        ("train stage2", lambda: train_stage("stage2", str(runs["stage1"]))),
        ("train stage3", lambda: train_stage("stage3", str(runs["stage2"]))),
        (
            "benchmark",
            lambda: build_benchmark(
                world,
                bench,
                duration=cfg.benchmark_duration,
                max_clips=cfg.benchmark_clips,
                caption=cfg.benchmark_caption,
            ),
        ),
        (
            "generate",
            lambda: _generate(
                runs["stage3"] / "release",
                bench / "requests.jsonl",
                out / "generated",
                cfg.generate,
                references=True,
            ),
        ),
        (
            "generate floor",
            lambda: _generate(
                runs["stage3"] / "release",
                bench / "requests.jsonl",
                out / "floor",
                cfg.generate,
                references=False,
            ),
        ),
        (
            "eval",
            lambda: _summary(
                evaluate(
                    out / "generated",
                    out / "eval",
                    floor=out / "floor",
                    ceiling=bench / "real",
                    references=bench / "refs" / "heldout",
                    cfg=EvalConfig(asr=cfg.eval_asr),
                )
            ),
        ),
    ]
    t0 = time.perf_counter()
    for name, step in tqdm(steps, desc="demo", unit="step"):
        t = time.perf_counter()
        result = step()
        report["steps"][name] = {"seconds": round(time.perf_counter() - t, 1), "result": _jsonable(result)}
        log.info("demo: %s done in %.1f s", name, time.perf_counter() - t)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    from facevox.training.metrics import plot_losses

    report["init"] = start or "random weights + base pre-training"
    plot_losses({k: v for k, v in runs.items() if (v / "metrics.jsonl").is_file()}, out / "loss_curves.png")
    contact_sheet(out, out / "frames.png")
    atomic_write_json(out / "report.json", report)
    from facevox.io.atomic import atomic_write_text

    atomic_write_text(out / "report.html", _html(out, report))
    log.info("demo report: %s (%.0f s)", out / "report.html", report["total_seconds"])
    return 0


SHEET_SETS = (("benchmark/real", "real"), ("generated", "generated"), ("floor", "no references"))


def contact_sheet(out: Path, png: Path, frames_per_clip: int = 3) -> Path | None:
    """A PNG of every benchmark clip: one row each, ``frames_per_clip`` frames (start, middle, end) of
    the real clip, the generated clip and the no-reference floor side by side, all at the generated
    clips' size."""
    import numpy as np
    from PIL import Image, ImageDraw

    from facevox.io.media import read_av

    generated = sorted((out / "generated").glob("*.mp4"))
    if not generated:
        return None
    height, width = read_av(generated[0]).video.shape[1:3]
    rows = []
    for mp4 in generated:
        cells = []
        for folder, _ in SHEET_SETS:
            path = out / folder / mp4.name
            video = read_av(path).video if path.is_file() else None
            if video is None or len(video) == 0:
                cells.append(np.full((height, 3 * width + 4, 3), 255, np.uint8))  # keep the columns
                continue
            pick = np.linspace(0, len(video) - 1, frames_per_clip).round().astype(int)
            # every set at the generated size (real clips are larger), so the columns line up
            frames = [
                np.asarray(Image.fromarray(video[i]).resize((width, height), Image.Resampling.BILINEAR))
                for i in pick
            ]
            cells.append(np.concatenate([*frames, np.full((height, 4, 3), 255, np.uint8)], axis=1))
        rows.append(np.concatenate(cells, axis=1))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    header = Image.new("RGB", (sheet.width, 16), "white")
    draw = ImageDraw.Draw(header)
    col = sheet.width // len(SHEET_SETS)
    for i, (_, label) in enumerate(SHEET_SETS):
        draw.text((i * col + 4, 2), label, fill="black")
    full = Image.new("RGB", (sheet.width, sheet.height + 16), "white")
    full.paste(header, (0, 0))
    full.paste(sheet, (0, 16))
    full.save(png)
    return png


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    agg = {k: v["aggregate"] for k, v in res["sets"].items()}
    g, f = agg["generated"], agg.get("floor", {})
    margins = {
        m: (g[m] - f[m]) if g.get(m) is not None and f.get(m) is not None else None
        for m in ("face_sim", "face_same_rate", "voice_sim", "sync_conf", "copy_paste_gap")
    }
    return {
        "aggregate": agg,
        "margin_over_floor": margins,
        "floor_to_ceiling": res.get("floor_to_ceiling"),
        "frechet": res.get("frechet"),
    }


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        return str(x)


def _html(out: Path, report: dict[str, Any]) -> str:
    ev = report["steps"].get("eval", {}).get("result", {})
    agg = ev.get("aggregate", {})
    margins = ev.get("margin_over_floor", {})
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(f"<td>{_f(agg.get(s, {}).get(m))}</td>" for s in ("generated", "floor", "ceiling"))
        + f"<td>{_f(margins.get(m))}</td></tr>"
        for m in (
            "face_detect_rate",
            "face_sim",
            "face_same_rate",
            "voice_sim",
            "sync_conf",
            "sync_dist",
            "voice_specificity",
            "attribution_acc",
            "voice_attribution_acc",
        )
    )
    steps = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['seconds']}</td></tr>" for k, v in report["steps"].items()
    )
    vids = ""
    for mp4 in sorted((out / "generated").glob("*.mp4")):
        cells = "".join(
            f"<td><video src='{d}/{mp4.name}' controls width='240'></video><br>{lab}</td>"
            for d, lab in (("generated", "generated"), ("floor", "no references"), ("benchmark/real", "real"))
            if (out / d / mp4.name).is_file()
        )
        side = mp4.with_suffix(".json")
        asked = json.loads(side.read_text()).get("caption_text", "") if side.is_file() else ""
        vids += f"<tr><td>{html.escape(mp4.stem)}</td>{cells}</tr>"
        if asked:  # the caption the model was given, tags and all
            vids += f"<tr><td></td><td colspan='3'><small>{html.escape(asked)}</small></td></tr>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>facevox demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>facevox demo</h1><p>Total {report["total_seconds"]} s. Held-out people only (never seen by any training); the
tiny model, stages 1-3 run here for minutes on a CPU from {html.escape(str(report.get("init", "")))}.
Margins are generated minus the no-reference floor (same requests, same seeds).</p>
<table><tr><th>metric</th><th>generated</th><th>floor</th><th>real (ceiling)</th><th>margin over floor</th></tr>{rows}</table>
<p>sync_conf / sync_dist score how the mouth region's changes follow the speech; on clips whose
mouths do not open and close (look at the clips below) they measure texture, not lip sync, and can
exceed the real clips' figures.</p>
<p><a href="eval/report.html">full evaluation report</a></p>
<h2>Frames</h2><p>Per benchmark clip, frames at the start, middle and end: real clip, generated with the
references, generated without them (the floor).</p><img src="frames.png" alt="frames of generated clips">
<img src="loss_curves.png" alt="loss curves">
<h2>Clips</h2><table>{vids}</table><h2>Steps</h2><table><tr><th>step</th><th>seconds</th></tr>{steps}</table>
</body></html>"""


def _f(v: Any) -> str:
    return (
        "–"
        if v is None
        else f"{v:+.3f}"
        if isinstance(v, float) and v < 0
        else f"{v:.3f}"
        if isinstance(v, float)
        else str(v)
    )
