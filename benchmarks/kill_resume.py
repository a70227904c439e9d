"""``kill -9`` at seeded random points of ``facevox curate``, ``encode`` and ``train``; resume; account.

    python benchmarks/kill_resume.py WORK_DIR [--stages curate encode train] [--kills 20] [--seed 0]

For each stage the real command (``facevox curate|encode|train``, a subprocess) first runs to the
end in ``WORK_DIR/{stage}/reference``, while its progress events are recorded: each time the count
of finished work on disk grows (files for curate and encode, the newest checkpoint's step for
train), at how many seconds after the run started working (its resolved ``config.yaml`` written;
before that a run has written nothing).

Then the same command runs in ``WORK_DIR/{stage}/killed`` and is killed with SIGKILL (its whole
process group) at ``--kills`` seeded points drawn uniformly over the reference's working time. A
point is replayed as "the reference's last progress event before it, then the seconds the reference
took from there", so it lands at the same place of the work however busy the machine is. After each
kill the same command is started again (a resume) and the next point kills it in turn; the run
after the last kill goes to the end. The killed folder is then compared with the reference:

- curate: the manifest's samples (ids, content), the exclusions and people, every crop and speech
  clip (bytes) and the shard files;
- encode: the index's windows (ids) and every window's tensors (``torch.equal``) and metadata, the
  null caption and the skipped windows;
- train: every ``metrics.jsonl`` row (training and held-out losses, timing aside), the release
  weights and the last checkpoint (model, EMA, optimiser, RNG, sampler position), bit for bit;

and files a killed run left behind (temporary names: hidden ``.name.*``, ``*.tmp``) are counted.
Prints one row per stage (``--details``: one per kill) and, with ``--json``, writes everything.

Inputs are the tests' fixtures: the curation clips of ``tests/test_curate_pipeline.py`` (three
talking clips, subtitles, seven broken files), the reference curation's output for encode (with the
tiny codecs of ``tests/test_data_encode.py``), the latent shards of ``tests/latent_fixtures.py`` and
the debug model for train.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STAGES = ("curate", "encode", "train")
POLL_S = 0.005
TRAIN_STEPS = 30
# timing fields differ between any two runs; everything else a run writes must match
VOLATILE_METRICS = {"samples_per_s"}


@dataclass(frozen=True)
class Stage:
    """One command under test: how to run it into a folder and how to read and judge that folder."""

    name: str
    argv: Callable[[Path], list[str]]  # the command that writes (or resumes) this output folder
    progress: Callable[[Path], int]  # finished work on disk: never goes down, also across resumes
    where: Callable[[Path], str]  # a short description of how far a folder has got
    compare: Callable[[Path, Path], Accounting]  # (reference, killed) -> the accounting


@dataclass
class Accounting:
    """A killed-and-resumed folder against the uninterrupted one. ``samples``: records (curate),
    windows (encode) or logged steps (train) of the reference."""

    samples: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # samples in both whose content differs
    other_differences: list[str] = field(default_factory=list)  # other outputs: files, tensors
    temp_files: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated or self.changed or self.other_differences)


@dataclass
class Timeline:
    """The reference run: seconds to start working, seconds of work, and its progress events."""

    startup_s: float  # from the launch to the resolved config written
    work_s: float  # from there to the last output written
    events: list[tuple[float, int]]  # (seconds after it started working, progress), first one at 0


@dataclass
class Kill:
    point_s: float  # the drawn point, seconds into the reference's work
    after_event: int  # replayed as: progress reaches this ...
    delay_s: float  # ... then this many seconds
    killed_after_s: float  # seconds after this run (a resume after the first) started working
    progress: int  # finished work on disk after the kill
    hit: str  # how far the folder had got
    temp_files: int  # temporary files the kill left


@dataclass
class StageResult:
    stage: str
    command: str
    reference: Timeline
    control: Accounting  # the reference against a second uninterrupted run
    kills: list[Kill]
    finished_before_kill: int  # points the run passed before the kill could land
    resume_exit_codes: list[int]
    final_progress: int
    reference_progress: int
    accounting: Accounting
    wall_s: float

    @property
    def resumed_ok(self) -> bool:
        return all(rc == 0 for rc in self.resume_exit_codes)

    @property
    def ok(self) -> bool:
        """Every resume ran; nothing lost, duplicated, changed or left behind; the control agrees."""
        a = self.accounting
        return self.resumed_ok and a.exact and not a.temp_files and self.control.exact


# --- running and killing ---------------------------------------------------------------------------


def facevox_argv() -> list[str]:
    """The ``facevox`` console script of this interpreter's environment (``python -m`` otherwise)."""
    script = Path(sys.executable).parent / "facevox"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facevox.cli"]


def launch(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as f:
        # a session of its own: the kill reaches the command and any process it started
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=f, stderr=f, start_new_session=True)


def started_working(out: Path, launched_ns: int) -> bool:
    """True once this run has (re)written its resolved config: it is past start-up."""
    try:
        return (out / "config.yaml").stat().st_mtime_ns >= launched_ns
    except FileNotFoundError:
        return False


def run_reference(stage: Stage, out: Path, log: Path) -> Timeline:
    launched_ns = time.time_ns()
    t0 = time.perf_counter()
    proc = launch(stage.argv(out), log)
    t_work: float | None = None
    events: list[tuple[float, int]] = []
    while True:
        done = proc.poll() is not None
        now = time.perf_counter()
        if t_work is None and started_working(out, launched_ns):
            t_work = now
        if t_work is not None:
            p = stage.progress(out)
            if not events or p > events[-1][1]:
                events.append((0.0 if not events else now - t_work, p))
        if done:
            break
        time.sleep(POLL_S)
    if proc.returncode != 0 or t_work is None:
        raise RuntimeError(f"{stage.name} reference run failed (exit {proc.returncode}); see {log}")
    # the work ends with the last output written: a kill after it (while the interpreter exits) hits nothing
    return Timeline(startup_s=t_work - t0, work_s=events[-1][0], events=events)


def kill_points(ref: Timeline, n: int, rng: random.Random) -> list[tuple[float, int, float]]:
    """``n`` points uniform over the reference's work, sorted, each as (seconds, progress to reach,
    seconds to wait after reaching it)."""
    points = []
    for t in sorted(rng.uniform(0.0, ref.work_s) for _ in range(n)):
        t_event, progress = max((e for e in ref.events if e[0] <= t), key=lambda e: e[0])
        points.append((t, progress, t - t_event))
    return points


def temp_files(out: Path) -> list[str]:
    """What atomic writes of a killed run leave: hidden ``.name.*`` files and ``*.tmp`` files/folders."""
    if not out.exists():
        return []
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.name.startswith(".") or p.name.endswith(".tmp") or ".tmp." in p.name
    )


def run_and_kill(
    stage: Stage, out: Path, log: Path, point: tuple[float, int, float]
) -> tuple[Kill | None, int | None]:
    """Run the command; kill it once ``point`` is reached. Returns (the kill, None), or (None, the exit
    code) when the run ended before the point was reached."""
    point_s, target, delay = point
    launched_ns = time.time_ns()
    proc = launch(stage.argv(out), log)
    t_work: float | None = None
    t_reached: float | None = None
    while proc.poll() is None:
        now = time.perf_counter()
        if t_work is None and started_working(out, launched_ns):
            t_work = now
        if t_work is not None and t_reached is None and stage.progress(out) >= target:
            t_reached = now
        if t_reached is not None and now - t_reached >= delay:
            assert t_work is not None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return (
                Kill(
                    point_s=round(point_s, 3),
                    after_event=target,
                    delay_s=round(delay, 3),
                    killed_after_s=round(now - t_work, 3),
                    progress=stage.progress(out),
                    hit=stage.where(out),
                    temp_files=len(temp_files(out)),
                ),
                None,
            )
        time.sleep(POLL_S)
    return None, proc.returncode


def run_stage(stage: Stage, work: Path, kills: int, seed: int) -> StageResult:
    t0 = time.perf_counter()
    root = work / stage.name
    base_out, ref_out, out = root / "baseline", root / "reference", root / "killed"
    for d in (base_out, ref_out, out):
        if d.exists():
            raise FileExistsError(f"{d} exists: give an empty WORK_DIR")
    # 1. an uninterrupted run that fills the caches (numba, torch), so that the reference's timeline is
    # that of a warm start like the resumes'; it is also the control: two uninterrupted runs must agree
    rc = launch(stage.argv(base_out), root / "baseline.log").wait()
    if rc != 0:
        raise RuntimeError(f"{stage.name} baseline run failed (exit {rc}); see {root / 'baseline.log'}")
    # 2. the reference: uninterrupted, its progress events timed
    ref = run_reference(stage, ref_out, root / "reference.log")
    control = stage.compare(ref_out, base_out)
    rng = random.Random(f"{seed}:{stage.name}")  # one stream per stage: --stages does not shift them
    done: list[Kill] = []
    codes: list[int] = []
    missed = 0
    log = root / "killed.log"
    for i, point in enumerate(kill_points(ref, kills, rng)):
        kill, exit_code = run_and_kill(stage, out, log, point)
        if kill is None:  # the run got to the end first: nothing left to kill
            assert exit_code is not None
            codes.append(exit_code)
            missed = kills - i
            break
        done.append(kill)
    else:
        final = launch(stage.argv(out), log)
        codes.append(final.wait())
    return StageResult(
        stage=stage.name,
        command=" ".join(["facevox", *stage.argv(out)[len(facevox_argv()) :]]),
        reference=ref,
        control=control,
        kills=done,
        finished_before_kill=missed,
        resume_exit_codes=codes,
        final_progress=stage.progress(out),
        reference_progress=stage.progress(ref_out),
        accounting=stage.compare(ref_out, out),
        wall_s=round(time.perf_counter() - t0, 1),
    )


# --- reading and comparing folders ---------------------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every non-temporary file under ``folder``, by relative path."""
    if not folder.is_dir():
        return {}
    temps = set(temp_files(folder))
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and str(p.relative_to(folder)) not in temps
    }


def count_samples(
    acc: Accounting, ref: list[tuple[str, str]], got: list[tuple[str, str]], prefix: str = ""
) -> None:
    """Lost, duplicated and changed samples from (id, content digest) pairs, into ``acc``."""
    ref_by, got_by = dict(ref), dict(got)
    acc.lost += [prefix + k for k in ref_by if k not in got_by]
    acc.duplicated += [prefix + k for k, n in Counter(k for k, _ in got).items() if n > 1]
    acc.other_differences += [f"{prefix}{k}: not in the reference" for k in got_by if k not in ref_by]
    acc.changed += [prefix + k for k, v in ref_by.items() if k in got_by and got_by[k] != v]


def diff_files(acc: Accounting, ref: Path, got: Path, what: str) -> None:
    a, b = file_digests(ref), file_digests(got)
    acc.other_differences += [f"{what}/{k}: missing" for k in a if k not in b]
    acc.other_differences += [f"{what}/{k}: extra" for k in b if k not in a]
    acc.other_differences += [f"{what}/{k}: differs" for k in a if k in b and a[k] != b[k]]


def diff_tensors(acc: Accounting, ref: Path, got: Path, what: str) -> None:
    """Every tensor of two safetensors files equal (``torch.equal``: same dtype, shape and bits)."""
    import torch
    from safetensors.torch import load_file

    if not got.is_file():
        acc.other_differences.append(f"{what}: missing")
        return
    a, b = load_file(str(ref)), load_file(str(got))
    if a.keys() != b.keys():
        acc.other_differences.append(f"{what}: tensors {sorted(a.keys() ^ b.keys())} in one only")
    for k in sorted(a.keys() & b.keys()):
        if not torch.equal(a[k], b[k]):
            diff = (a[k].double() - b[k].double()).abs().max() if a[k].shape == b[k].shape else None
            acc.other_differences.append(f"{what}:{k} differs (max |diff| {diff})")


def sample_digest(path: Path) -> str:
    """A latent window's content: every tensor's dtype, shape and bytes, and its metadata."""
    import torch
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(str(path), framework="pt") as f:
        h.update(json.dumps(f.metadata(), sort_keys=True).encode())
        for k in sorted(f.keys()):
            t = f.get_tensor(k).contiguous()
            h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shard_file(path: Path) -> Any:
    """A shard file without what measures the machine (timings in its analyses and marker)."""
    if path.name.endswith(".done"):
        return json.loads(path.read_text())["clip_ids"]
    rows = jsonl(path)
    if path.name.endswith(".analysis.jsonl"):
        rows = [{k: v for k, v in r.items() if k != "timings"} for r in rows]
    return rows


def compare_curate(ref: Path, got: Path) -> Accounting:
    refs, gots = jsonl(ref / "manifest.jsonl"), jsonl(got / "manifest.jsonl")
    acc = Accounting(samples=len(refs), temp_files=temp_files(got))
    count_samples(
        acc, [(r["sample_id"], digest(r)) for r in refs], [(r["sample_id"], digest(r)) for r in gots]
    )
    for name in ("exclusions.jsonl", "people.jsonl"):
        if sorted(map(digest, jsonl(ref / name))) != sorted(map(digest, jsonl(got / name))):
            acc.other_differences.append(f"{name} differs")
    for sub in ("crops", "audio", "shards"):
        if sub == "shards":
            a = {p.name: p for p in (ref / sub).glob("*") if not p.name.startswith(".")}
            b = {p.name: p for p in (got / sub).glob("*") if not p.name.startswith(".")}
            if a.keys() != b.keys():
                acc.other_differences.append(f"shards: {sorted(a.keys() ^ b.keys())} in one only")
            for name in sorted(a.keys() & b.keys()):
                if shard_file(a[name]) != shard_file(b[name]):
                    acc.other_differences.append(f"shards/{name} differs")
        else:
            diff_files(acc, ref / sub, got / sub, sub)
    return acc


def window_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "samples").glob("*.safetensors") if not p.name.startswith("."))


def compare_encode(ref: Path, got: Path) -> Accounting:
    refs, gots = jsonl(ref / "index.jsonl"), jsonl(got / "index.jsonl")
    acc = Accounting(samples=len(refs), temp_files=temp_files(got))

    def windows(folder: Path, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        out = []
        for r in rows:
            path = folder / r["file"]
            out.append((r["sample_id"], digest(r) + (sample_digest(path) if path.is_file() else "missing")))
        return out

    count_samples(acc, windows(ref, refs), windows(got, gots))
    for wid in acc.changed:  # say which tensors differ, and by how much
        diff_tensors(acc, ref / "samples" / f"{wid}.safetensors", got / "samples" / f"{wid}.safetensors", wid)
    a, b = window_files(ref), window_files(got)
    if a != b:
        acc.other_differences.append(f"samples/ holds {len(b)} window files, the reference {len(a)}")
    diff_tensors(acc, ref / "null_caption.safetensors", got / "null_caption.safetensors", "null_caption")
    if jsonl(ref / "skipped.jsonl") != jsonl(got / "skipped.jsonl"):
        acc.other_differences.append("skipped.jsonl differs")
    return acc


def compare_train(ref: Path, got: Path) -> Accounting:
    def rows(folder: Path) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if k not in VOLATILE_METRICS} for r in jsonl(folder / "metrics.jsonl")
        ]

    a, b = rows(ref), rows(got)
    acc = Accounting(samples=sum("loss" in r for r in a), temp_files=temp_files(got))

    def keyed(rs: list[dict[str, Any]]) -> list[tuple[str, str]]:  # a training row and an eval row per step
        return [(f"step {r['step']}{'' if 'loss' in r else ' eval'}", digest(r)) for r in rs]

    count_samples(acc, keyed(a), keyed(b))
    for name in ("model.safetensors",):
        diff_tensors(
            acc, ref / "release" / "model" / name, got / "release" / "model" / name, f"release/{name}"
        )
    last = sorted((ref / "checkpoints").glob("step-*"))[-1].name
    if not (got / "checkpoints" / last / "state.json").is_file():
        acc.other_differences.append(f"checkpoints/{last}: missing")
        return acc
    for name in ("model", "ema", "optimizer", "rng"):
        diff_tensors(
            acc,
            ref / "checkpoints" / last / f"{name}.safetensors",
            got / "checkpoints" / last / f"{name}.safetensors",
            f"{last}/{name}",
        )
    state = [json.loads((d / "checkpoints" / last / "state.json").read_text()) for d in (ref, got)]
    if [(s["step"], s["sampler"]) for s in state] != [(state[0]["step"], state[0]["sampler"])] * 2:
        acc.other_differences.append(f"{last}/state.json: step or sampler position differs")
    return acc


# --- the three stages --------------------------------------------------------------------------------


def visible_files(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")) if out.exists() else 0


def train_progress(out: Path) -> int:
    """The newest checkpoint's step, then one each for the release and the loss plot."""
    release = (out / "release" / "model" / "model.safetensors").is_file()
    return latest_step(out) + release + (release and (out / "loss_curves.png").is_file())


def latest_step(out: Path) -> int:
    steps = [
        int(p.name.split("-")[1])
        for p in (out / "checkpoints").glob("step-*")
        if not p.name.endswith(".tmp") and (p / "state.json").is_file()
    ]
    return max(steps, default=0)


def where_curate(out: Path, total: int) -> str:
    done = len([p for p in (out / "shards").glob("*.done") if not p.name.startswith(".")])
    if (out / "stats.json").is_file():
        return "finished: stats written"
    if done == total:
        return f"reduce: all {total} shards done"
    clips = visible_files(out / "crops") + visible_files(out / "audio")
    return f"shard {done + 1}/{total}: {done} done, {clips} crops and speech clips written"


def where_encode(out: Path, total: int) -> str:
    n = len(window_files(out))
    if (out / "encode.json").is_file():
        return "finished: summary written"
    if n == total:
        return f"index: all {total} windows written"
    return f"window {n + 1}/{total}: {n} written"


def where_train(out: Path) -> str:
    logged = max((r["step"] for r in jsonl(out / "metrics.jsonl") if "loss" in r), default=0)
    if (out / "release" / "model" / "model.safetensors").is_file():
        return "finished: plot written" if (out / "loss_curves.png").is_file() else "plot: release written"
    step = latest_step(out)
    if step == TRAIN_STEPS:
        return "release: last checkpoint written"
    first = step // 10 * 10 + 1  # steps in tens, for the summary
    return f"steps {first}-{first + 9}: step {logged} logged, checkpoint {step}"


def build_stages(work: Path, which: list[str]) -> dict[str, Stage]:
    """Write the inputs (the tests' fixtures) under ``work/inputs`` and describe the three commands."""
    sys.path.insert(0, str(REPO / "tests"))  # the tests' fixture modules
    inputs = work / "inputs"
    stages: dict[str, Stage] = {}
    fv = facevox_argv()
    quiet = ["--log-level", "WARNING"]

    clips = inputs / "clips"
    curate_argv = lambda out: [  # noqa: E731
        *fv,
        *quiet,
        "curate",
        str(clips),
        "--out",
        str(out),
        "--workers",
        "1",
        "--shard-size",
        "2",
        "--no-progress",
    ]
    if "curate" in which or "encode" in which:
        make_clips(clips)
        stages["curate"] = Stage(
            "curate",
            curate_argv,
            visible_files,
            lambda out: where_curate(
                out, len(list((work / "curate" / "reference" / "shards").glob("*.done")))
            ),
            compare_curate,
        )
    if "encode" in which:
        curated = work / "curate" / "reference"
        codecs = make_codecs(inputs / "codecs")
        stages["encode"] = Stage(
            "encode",
            lambda out: [
                *fv,
                *quiet,
                "encode",
                str(curated),
                "--out",
                str(out),
                f"video_codec={codecs / 'video'}",
                f"audio_codec={codecs / 'audio'}",
                "width=64",
                "height=48",
                "window_frames=9",
                "windows_per_sample=3",
                "face_size=32",
                "threads=1",
            ],
            visible_files,
            lambda out: where_encode(out, len(jsonl(work / "encode" / "reference" / "index.jsonl"))),
            compare_encode,
        )
    if "train" in which:
        from latent_fixtures import write_shards

        shards = write_shards(inputs / "shards")
        stages["train"] = Stage(
            "train",
            lambda out: [
                *fv,
                *quiet,
                "train",
                str(shards),
                "--out",
                str(out),
                "strategy=base",
                "size=debug",
                f"steps={TRAIN_STEPS}",
                "batch_size=2",
                "log_every=1",
                "eval_every=10",
                "checkpoint_every=2",
                "warmup=2",
                "lr=3e-3",
                "threads=1",
            ],
            train_progress,
            where_train,
            compare_train,
        )
    return stages


def make_clips(d: Path) -> Path:
    """The curation inputs of tests/test_curate_pipeline.py: three talking clips and broken files."""
    from curate_fixtures import bad_inputs, talking_clip

    if (d / "c.srt").is_file():
        return d
    talking_clip(d / "a.mp4", [(0.3, "hello there my friend"), (2.2, "how are you doing today")], 4.0)
    talking_clip(d / "sub" / "b.mp4", [(0.4, "the weather is very nice")], 3.0, flip=True)
    talking_clip(d / "c.mov", [(0.2, "good morning to you all"), (1.9, "see you again soon")], 3.5)
    (d / "sub" / "b.vtt").write_bytes(b"\xff\xfe not a subtitle")
    bad_inputs(d / "bad")
    (d / "c.srt").write_text("1\n00:00:00,200 --> 00:00:01,700\ngood morning to you all\n")
    return d


def make_codecs(d: Path) -> Path:
    """The tiny random codecs of tests/test_data_encode.py."""
    import torch

    from facevox.codecs.mel import MelAudioCodec, MelCodecConfig
    from facevox.codecs.video import WanVideoCodec, tiny_wan_config

    if not (d / "audio").is_dir():
        torch.manual_seed(0)
        WanVideoCodec.from_config(tiny_wan_config(base_dim=8, z_dim=4)).save_pretrained(d / "video")
        MelAudioCodec(MelCodecConfig(width=16, latent_channels=6)).save_pretrained(d / "audio")
    return d


# --- reporting --------------------------------------------------------------------------------------


def hits_summary(kills: list[Kill]) -> str:
    """Where the kills landed, by phase in the order first hit: e.g. ``shard 1/5 18, shard 5/5 2``."""
    phases = Counter(k.hit.split(":")[0] for k in kills)
    return ", ".join(f"{p} {n}" for p, n in phases.items())


def table(results: list[StageResult]) -> str:
    head = (
        "| command | kills | where they hit | kills mid-write | resumed ok | samples | lost | duplicated "
        "| bit-exact | temp files left | 2 uninterrupted runs equal | wall |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        a = r.accounting
        kills = f"{len(r.kills)}"
        if r.finished_before_kill:  # the run ended before these points: it failed, or it was faster
            kills += (
                f" ({r.finished_before_kill} {'not reached' if r.resumed_ok else 'lost to a failed run'})"
            )
        lines.append(
            f"| `facevox {r.stage}` | {kills} | {hits_summary(r.kills)} "
            f"| {sum(k.temp_files > 0 for k in r.kills)} | {'yes' if r.resumed_ok else 'NO'} "
            f"| {a.samples} | {len(a.lost)} | {len(a.duplicated)} | {'yes' if a.exact else 'NO'} "
            f"| {len(a.temp_files)} | {'yes' if r.control.exact else 'NO'} | {r.wall_s:.0f} s |"
        )
    return "\n".join(lines)


def details(r: StageResult) -> str:
    lines = [
        f"{r.stage}: reference {r.reference.startup_s:.1f} s start-up + {r.reference.work_s:.1f} s work, "
        f"{len(r.reference.events)} progress events; {r.command}",
        "  #  point_s  after_event+delay_s  killed_after_s  temp  hit",
    ]
    for i, k in enumerate(r.kills, 1):
        lines.append(
            f"  {i:<2} {k.point_s:7.2f}  {k.after_event:>6} +{k.delay_s:6.2f}  {k.killed_after_s:14.2f}  "
            f"{k.temp_files:>4}  {k.hit}"
        )
    for label, a in (("killed", r.accounting), ("control", r.control)):
        for name in ("lost", "duplicated", "changed", "other_differences", "temp_files"):
            if getattr(a, name):
                lines.append(f"  {label} {name}: {getattr(a, name)[:10]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path, help="an empty folder for the inputs, the runs and their logs")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--kills", type=int, default=20, help="kills per stage (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill points (default 0)")
    p.add_argument("--details", action="store_true", help="one line per kill")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    results = run(args.work, args.stages, args.kills, args.seed)
    if args.details:
        for r in results:
            print(details(r))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    ok = all(r.ok for r in results)
    return 0 if ok else 1


def run(work: Path, stages: list[str], kills: int, seed: int) -> list[StageResult]:
    work.mkdir(parents=True, exist_ok=True)
    built = build_stages(work, stages)
    results = []
    for name in STAGES:
        if name == "curate" and "curate" not in stages and "encode" in stages:  # encode's input only
            run_reference(built["curate"], work / "curate" / "reference", work / "curate" / "reference.log")
        elif name in stages:
            results.append(run_stage(built[name], work, kills, seed))
    return results


if __name__ == "__main__":
    sys.exit(main())
