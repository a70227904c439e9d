"""Run metrics: JSONL lines in the run folder, optional TensorBoard, a PNG of the loss curves."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from facevox.io.atomic import atomic_write_text, partial_writes

log = logging.getLogger(__name__)

SIGMA_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0001)  # loss by noise level: [0, .25), [.25, .5), ...


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``. A run resumed from the checkpoint of
    ``start_step`` keeps the lines up to that step; a run that starts from scratch (0) keeps none."""

    def __init__(self, run_dir: str | Path, *, start_step: int = 0, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        for tmp in partial_writes(self.path.parent, self.path.name):
            tmp.unlink(missing_ok=True)
        if self.path.exists():  # drop lines a killed run wrote after its last checkpoint (with none: all)
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if start_step > 0 and (step := _step_of(line)) is not None and step <= start_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))  # a kill here loses none
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean, sort_keys=True) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if k != "step" and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def plot_losses(run_dirs: dict[str, str | Path], out_png: str | Path) -> Path:
    """One panel per stream (video, audio): training loss (light) and held-out loss (bold) per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in run_dirs.items():
        rows = read_metrics(run)
        for ax, stream in zip(axes, ("video", "audio"), strict=True):
            tr = [(r["step"], r[f"loss_{stream}"]) for r in rows if r.get(f"loss_{stream}") is not None]
            va = [(r["step"], r[f"val_{stream}"]) for r in rows if r.get(f"val_{stream}") is not None]
            if tr:
                (line,) = ax.plot(*zip(*tr, strict=True), alpha=0.35, label=f"{label} train")
                if va:
                    ax.plot(*zip(*va, strict=True), "o-", color=line.get_color(), label=f"{label} held-out")
    for ax, stream in zip(axes, ("video", "audio"), strict=True):
        ax.set_title(f"{stream} velocity MSE")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
