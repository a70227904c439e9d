"""The step protocol: a small unit that declares its resources, loads its model once and says why it drops.

A curation run is a chain of steps applied to one video at a time (the *map* phase, run in parallel
by an executor) followed by a dataset-wide *reduce* phase (cross-video identity clustering,
references, captions, manifest). Modelled on datatrove's ``PipelineStep`` and cosmos-curate's stages.

Each step:

- names itself (``name``) and its resources (``resources``: CPU cores and memory a worker needs),
- loads whatever model it needs in ``setup()``, called once per worker process (or Ray actor),
- maps a :class:`~facevox.curate.records.ClipWork` to the same object, enriched, or to a
  :class:`Drop` that says why the video is excluded. A step may also drop *parts* of a video
  (a too-short face track, an empty subtitle file) by appending to ``work.excluded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from facevox.curate.records import ClipWork


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpus: float = 1.0  # cores one call keeps busy
    memory_mb: int = 512  # resident memory of the loaded model plus one video's working set


@dataclass(frozen=True, kw_only=True)
class Drop:
    """Why an input (or a part of it, named by ``item``) is excluded."""

    stage: str  # the step that dropped it
    reason: str  # a short machine-readable reason, e.g. "no_audio"
    detail: str = ""  # a human-readable explanation
    item: str = ""  # the part dropped ("" = the whole input), e.g. "track:3" or "subtitle:x.srt"

    def to_dict(self, source: str) -> dict[str, str]:
        return {
            "source": source,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "item": self.item,
        }


@runtime_checkable
class Step(Protocol):
    name: str
    resources: Resources

    def setup(self) -> None:
        """Load models; called once per worker before the first ``process``."""

    def process(self, work: ClipWork) -> ClipWork | Drop:
        """Enrich ``work`` or say why it is dropped."""


@dataclass
class StepCounts:
    """Per-stage counters: inputs seen, kept, dropped by reason."""

    seen: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: StepCounts) -> None:
        self.seen += other.seen
        self.kept += other.kept
        for k, v in other.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v

    def to_dict(self) -> dict[str, object]:
        return {"seen": self.seen, "kept": self.kept, "dropped": dict(sorted(self.dropped.items()))}
