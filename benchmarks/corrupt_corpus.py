"""Curate a corrupt corpus (three good talking clips among 22 odd or broken files) and report, per file,
what curation did with it; check the good clips' samples against a run on the good clips alone.

    python benchmarks/corrupt_corpus.py OUT_DIR [--workers 1] [--json REPORT.json]

OUT_DIR/corpus/good and OUT_DIR/corpus/corrupt are the inputs (tests/corrupt_fixtures.py builds
them), OUT_DIR/curated_good and OUT_DIR/curated_corrupt the two runs. Prints a table (file, kind,
expected, outcome, reason) and exits 1 when a file's outcome is not the expected one, a file has
no reason, or the good clips' samples differ between the runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corrupt_fixtures import GOOD, KEPT, CorpusFile, build_corpus  # noqa: E402  (the tests' corpus builder)
from facevox.config import load  # noqa: E402
from facevox.curate.config import CurateConfig  # noqa: E402
from facevox.curate.pipeline import curate, read_manifest  # noqa: E402
from facevox.curate.probe import clip_id_for  # noqa: E402


@dataclass
class FileOutcome:
    name: str
    kind: str
    expect: str
    outcome: str  # KEPT, or the reason the whole file was dropped
    detail: str  # the exclusion's detail, or the decoded size of a kept file
    parts_dropped: list[str] = field(default_factory=list)  # "stage:reason" of dropped parts
    samples: int = 0


@dataclass
class Report:
    files: list[FileOutcome]
    good_samples_equal: bool
    good_samples: int
    seconds_good: float  # wall-clock seconds of each curation run
    seconds_corrupt: float
    stats_corrupt: dict[str, Any]

    @property
    def failures(self) -> list[str]:
        bad = [
            f"{f.name}: expected {f.expect}, got {f.outcome} ({f.detail})"
            for f in self.files
            if f.outcome != f.expect
        ]
        bad += [f"{f.name}: no reason given" for f in self.files if f.outcome != KEPT and not f.detail]
        if not self.good_samples_equal:
            bad.append("the good clips' samples differ from the run on the good clips alone")
        return bad


def _config(inputs: Path, out: Path, workers: int) -> CurateConfig:
    return load(CurateConfig, overrides=[f"input_dir={inputs}", f"out_dir={out}", f"workers={workers}"])


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def good_samples(curated: Path, inputs: Path, clip_ids: set[str]) -> list[dict[str, Any]]:
    """The manifest records of ``clip_ids``, their source path relative to ``inputs``."""
    return [
        {**m, "video_path": str(Path(m["video_path"]).relative_to(inputs))}
        for m in read_manifest(curated)
        if m["clip_id"] in clip_ids
    ]


def outcomes(files: list[CorpusFile], inputs: Path, curated: Path) -> list[FileOutcome]:
    """What the run in ``curated`` did with each file: kept (with its decoded size and samples) or
    dropped (the exclusion log's reason and detail), plus the parts it dropped."""
    kept = {a["source"]: a for p in sorted((curated / "shards").glob("*.analysis.jsonl")) for a in _lines(p)}
    excluded: dict[str, list[dict[str, str]]] = {}
    for e in _lines(curated / "exclusions.jsonl"):
        excluded.setdefault(e["source"], []).append(e)
    samples: dict[str, int] = {}
    for m in read_manifest(curated):
        samples[m["video_path"]] = samples.get(m["video_path"], 0) + 1
    result = []
    for f in files:
        source = str((inputs / f.name).absolute())
        parts = [f"{e['stage']}:{e['reason']}" for e in excluded.get(source, []) if e["item"]]
        if source in kept:
            a = kept[source]
            detail = f"{a['width']}x{a['height']}, {a['num_frames']} frames at {a['fps']:.2f} fps"
            result.append(FileOutcome(f.name, f.kind, f.expect, KEPT, detail, parts, samples.get(source, 0)))
            continue
        whole = [e for e in excluded.get(source, []) if not e["item"]]
        reason = whole[-1]["reason"] if whole else "(no exclusion)"
        detail = whole[-1]["detail"].replace(str(inputs) + "/", "") if whole else ""
        result.append(FileOutcome(f.name, f.kind, f.expect, reason, detail, parts))
    return result


def run(out: Path, workers: int = 1) -> Report:
    if out.exists():
        shutil.rmtree(out)
    good, files = build_corpus(out / "corpus")
    good_dir, corrupt_dir = out / "corpus" / "good", out / "corpus" / "corrupt"
    t0 = time.perf_counter()
    curate(_config(good_dir, out / "curated_good", workers), progress=False)
    t1 = time.perf_counter()
    stats = curate(_config(corrupt_dir, out / "curated_corrupt", workers), progress=False)
    t2 = time.perf_counter()
    ids = {clip_id_for(good_dir / g, good_dir) for g in good}
    alone = good_samples(out / "curated_good", good_dir, ids)
    among = good_samples(out / "curated_corrupt", corrupt_dir, ids)
    return Report(
        files=outcomes(files, corrupt_dir, out / "curated_corrupt"),
        good_samples_equal=bool(alone) and alone == among,
        good_samples=len(among),
        seconds_good=round(t1 - t0, 1),
        seconds_corrupt=round(t2 - t1, 1),
        stats_corrupt=stats,
    )


def table(report: Report) -> str:
    rows = [
        "| file | kind | expected | outcome | reason / decoded as | parts dropped | samples |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in report.files:
        detail = f.detail.replace("|", "/")[:90]
        rows.append(
            f"| `{f.name}` | {f.kind} | {f.expect} | {f.outcome} | {detail} | {', '.join(f.parts_dropped)} | {f.samples} |"
        )
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="work folder (emptied first)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = run(args.out, args.workers)
    print(table(report))
    bad = sum(f.kind != GOOD for f in report.files)
    print(
        f"\n{len(report.files)} files, {bad} odd or broken ({100 * bad / len(report.files):.0f} %); "
        f"good clips' samples equal to the run without the bad files: {report.good_samples_equal} "
        f"({report.good_samples} samples); curation {report.seconds_corrupt} s (corrupt corpus), "
        f"{report.seconds_good} s (good clips alone)"
    )
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "failures": report.failures}, indent=1))
    for failure in report.failures:
        print("FAIL", failure)
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
