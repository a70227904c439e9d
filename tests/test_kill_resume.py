"""``kill -9`` at many points: the harness ``benchmarks/kill_resume.py`` (slow: 20 seeded kills of each of
``facevox curate``, ``encode`` and ``train``, every sample accounted for against an uninterrupted run),
the accounting it relies on (it must see a lost, duplicated or changed sample), and what it found."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

from curate_fixtures import have_espeak
from facevox.io.atomic import atomic_path, partial_writes
from facevox.training.config import TrainConfig
from facevox.training.metrics import read_metrics
from facevox.training.trainer import train
from latent_fixtures import write_shards

REPO = Path(__file__).resolve().parents[1]


def _harness() -> ModuleType:
    if "kill_resume" not in sys.modules:
        spec = importlib.util.spec_from_file_location("kill_resume", REPO / "benchmarks" / "kill_resume.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["kill_resume"] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules["kill_resume"]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_kill_points_are_seeded_and_replay_the_reference_timeline() -> None:
    kr = _harness()
    ref = kr.Timeline(startup_s=2.0, work_s=10.0, events=[(0.0, 1), (4.0, 5), (9.0, 6), (10.0, 8)])
    a = kr.kill_points(ref, 20, random.Random("0:train"))
    assert a == kr.kill_points(ref, 20, random.Random("0:train"))  # the same seed, the same points
    assert a != kr.kill_points(ref, 20, random.Random("1:train"))
    assert [p[0] for p in a] == sorted(p[0] for p in a) and all(0 <= p[0] <= 10.0 for p in a)
    for t, progress, delay in a:  # the last event at or before the point, then the rest of the way
        t_event, p_event = max((e for e in ref.events if e[0] <= t), key=lambda e: e[0])
        assert (progress, delay) == (p_event, pytest.approx(t - t_event))


def test_accounting_sees_lost_duplicated_and_changed_samples(tmp_path: Path) -> None:
    kr = _harness()
    ref, got = tmp_path / "ref", tmp_path / "got"
    rows = [{"sample_id": s, "caption_text": s} for s in ("a", "b", "c")]
    _write_jsonl(ref / "manifest.jsonl", rows)
    _write_jsonl(got / "manifest.jsonl", [rows[0], rows[0], {"sample_id": "c", "caption_text": "other"}])
    (got / "crops").mkdir()
    (got / "crops" / ".t000.png.abcd1234.png").write_bytes(b"half")  # a kill mid-write
    acc = kr.compare_curate(ref, got)
    assert (acc.samples, acc.lost, acc.duplicated, acc.changed) == (3, ["b"], ["a"], ["c"])
    assert acc.temp_files == ["crops/.t000.png.abcd1234.png"] and not acc.exact
    assert kr.compare_curate(ref, ref).exact


def _killed_mid_write(path: Path) -> tuple[object, Path]:
    """An atomic write of ``path`` entered and never left, as a kill leaves it (keep the first item
    alive: collecting it would run the write's clean-up)."""
    write = atomic_path(path)
    return write, write.__enter__()


def test_partial_writes_are_what_a_kill_mid_write_leaves(tmp_path: Path) -> None:
    w1, tmp = _killed_mid_write(tmp_path / "index.jsonl")
    tmp.write_text("half a line")
    w2, _ = _killed_mid_write(tmp_path / "samples" / "w.safetensors")
    (tmp_path / ".gitignore").write_text("*")  # hidden, but no write's temporary
    (tmp_path / ".index.jsonl.swp").write_text("")
    assert partial_writes(tmp_path) == [tmp]
    assert partial_writes(tmp_path, "index.jsonl") == [tmp] and partial_writes(tmp_path, "other") == []
    assert [p.suffix for p in partial_writes(tmp_path / "samples")] == [".safetensors"]
    # safetensors' save_file writes through its own `.tmp` + 6 characters sibling first (seen by the
    # harness after a kill in encode): found with the folder's partial writes, not with a named file's
    lib_tmp = tmp_path / "samples" / ".tmpUNA1c1"
    lib_tmp.write_bytes(b"half a tensor")
    (tmp_path / "samples" / ".tmpfile-notes").write_text("")  # not that pattern
    assert lib_tmp in partial_writes(tmp_path / "samples") and len(partial_writes(tmp_path / "samples")) == 2
    assert partial_writes(tmp_path / "samples", "w.safetensors") != partial_writes(tmp_path / "samples")


def test_a_run_killed_before_its_first_checkpoint_starts_its_loss_log_afresh(tmp_path: Path) -> None:
    """Found by the harness: a kill after the step-0 validation and before the first checkpoint left
    that row in metrics.jsonl, and the resumed run (from step 0) wrote it a second time."""
    shards = write_shards(tmp_path / "shards")

    def cfg(out: Path) -> TrainConfig:
        return TrainConfig(
            data=str(shards),
            out=str(out),
            size="debug",
            steps=2,
            batch_size=2,
            log_every=1,
            eval_every=2,
            checkpoint_every=2,
            warmup=1,
            threads=1,
        )

    train(cfg(tmp_path / "straight"), progress=False)
    straight = read_metrics(tmp_path / "straight")
    killed = tmp_path / "killed"
    _write_jsonl(killed / "metrics.jsonl", straight[:2])  # step-0 validation, step 1; no checkpoint
    w, _ = _killed_mid_write(killed / "metrics.jsonl")  # and a kill in the middle of rewriting it
    train(cfg(killed), progress=False)

    def rows(run: Path) -> list[tuple[int, float | None, float | None]]:
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]

    assert rows(killed) == rows(tmp_path / "straight")  # step 0 validated once, same floats
    assert partial_writes(killed) == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["curate", "encode", "train"])
def test_kill_9_at_20_seeded_points(stage: str, tmp_path: Path) -> None:
    """20 SIGKILLs at seeded points of the real command, each followed by a resume: nothing lost,
    duplicated or changed against an uninterrupted run, no temporary file left (docs/reliability.md)."""
    if stage != "train" and not have_espeak():
        pytest.skip("espeak-ng (Debian package) is not installed")
    kr = _harness()
    [result] = kr.run(tmp_path, [stage], kills=20, seed=0)
    print(kr.details(result))
    print(kr.table([result]))
    a = result.accounting
    assert result.control.exact, f"two uninterrupted runs differ: {result.control}"
    assert result.resumed_ok, kr.details(result)
    # every point is reached, but one at the very end may find a resume quicker than the reference
    assert len(result.kills) + result.finished_before_kill == 20 and len(result.kills) >= 19
    assert (a.lost, a.duplicated, a.changed) == ([], [], []), kr.details(result)
    assert a.other_differences == [] and a.temp_files == [], kr.details(result)
    assert result.final_progress == result.reference_progress
