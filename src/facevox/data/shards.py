"""The latent shard format: one safetensors file per training sample plus an index.

``facevox encode MANIFEST --out OUT`` writes

    OUT/samples/<sample_id>.safetensors   one :class:`LatentSample` (tensors + JSON metadata)
    OUT/index.jsonl                       one :class:`IndexEntry` per line (written whole, atomically)
    OUT/null_caption.safetensors          the empty caption's hidden states (text dropout)

Shape legend: ``C``/``Ca`` video/audio latent channels; ``T, H, W`` video latent grid; ``Na`` audio
latent frames; ``K`` identity slots (people) in the sample; ``V``/``Vs`` face views (other clips / the
sample's own clip); ``h, w`` face-reference latent grid; ``Tr``/``Trs`` voice-reference latent frames;
``L`` caption tokens; ``E`` text width. Latents are the codecs' *normalised* posteriors
(:class:`facevox.codecs.base.LatentDist`), kept as mean and std so the trainer can draw a sample.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from facevox.io.atomic import atomic_path, atomic_write_text

FORMAT = "facevox.latents/1"


class ShardError(ValueError):
    """A sample file or index that is missing, half-written or inconsistent; the message names it."""


@dataclass(frozen=True, kw_only=True)
class LatentSample:
    """One training sample's latents."""

    sample_id: str
    video_mean: Tensor  # (C, T, H, W) float32
    video_std: Tensor  # (C, T, H, W) float32
    audio_mean: Tensor  # (Na, Ca) float32 (time first: the model's layout)
    audio_std: Tensor  # (Na, Ca) float32
    caption: Tensor  # (L, E) float16 caption hidden states
    caption_mask: Tensor  # (L,) bool, True = real token
    caption_slot_ids: Tensor  # (L,) int64, slot of a tagged token, -1 untagged
    slot_ids: Tensor  # (K,) int64, 0..K-1 in caption order
    face_refs: Tensor  # (K, V, C, 1, h, w) float32 face views from *other* clips (curation's references)
    face_refs_mask: Tensor  # (K, V) bool
    voice_refs: Tensor  # (K, Tr, Ca) float32 voice latents from *other* clips
    voice_refs_mask: Tensor  # (K, Tr) bool
    face_refs_self: Tensor  # (K, Vs, C, 1, h, w) face crops from this sample's own clip
    face_refs_self_mask: Tensor  # (K, Vs) bool
    voice_refs_self: Tensor  # (K, Trs, Ca) this person's speech in this sample's own clip
    voice_refs_self_mask: Tensor  # (K, Trs) bool
    meta: dict[str, Any]  # JSON: person_ids (per slot), split, fps, sample_rate, caption_text, source, ...

    def __post_init__(self) -> None:
        _check_sample(self)

    @property
    def num_slots(self) -> int:
        return int(self.slot_ids.shape[0])


_TENSORS = [f.name for f in fields(LatentSample) if f.name not in ("sample_id", "meta")]


def _check_sample(s: LatentSample) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            shapes = {n: tuple(getattr(s, n).shape) for n in _TENSORS}
            raise ShardError(f"sample {s.sample_id!r}: {what} (shapes {shapes})")

    need(
        s.video_mean.ndim == 4 and s.video_mean.shape == s.video_std.shape,
        "video_mean/std must be (C, T, H, W)",
    )
    need(
        s.audio_mean.ndim == 2 and s.audio_mean.shape == s.audio_std.shape, "audio_mean/std must be (Na, Ca)"
    )
    need(s.caption.ndim == 2 and s.caption_mask.shape == s.caption.shape[:1], "caption (L, E), mask (L,)")
    need(s.caption_slot_ids.shape == s.caption_mask.shape, "caption_slot_ids must be (L,)")
    need(bool(s.caption_mask.any()), "the caption needs at least one real token")
    K = s.slot_ids.shape[0] if s.slot_ids.ndim == 1 else -1
    need(K >= 1, "slot_ids must be (K,) with K >= 1")
    C, Ca = s.video_mean.shape[0], s.audio_mean.shape[1]
    for name, ch in (("face_refs", C), ("face_refs_self", C)):
        t, m = getattr(s, name), getattr(s, name + "_mask")
        need(
            t.ndim == 6 and t.shape[0] == K and t.shape[2] == ch and t.shape[3] == 1,
            f"{name} must be (K, V, C, 1, h, w)",
        )
        need(m.shape == t.shape[:2] and m.dtype == torch.bool, f"{name}_mask must be bool (K, V)")
    for name in ("voice_refs", "voice_refs_self"):
        t, m = getattr(s, name), getattr(s, name + "_mask")
        need(t.ndim == 3 and t.shape[0] == K and t.shape[2] == Ca, f"{name} must be (K, Tr, Ca)")
        need(m.shape == t.shape[:2] and m.dtype == torch.bool, f"{name}_mask must be bool (K, Tr)")
    tagged = s.caption_slot_ids[s.caption_slot_ids >= 0]
    need(bool(torch.isin(tagged, s.slot_ids).all()), "caption tags name a slot the sample does not have")


def write_sample(path: str | Path, sample: LatentSample) -> Path:
    """Write ``sample`` atomically (a crash leaves either the old file or none)."""
    path = Path(path)
    tensors = {n: getattr(sample, n).contiguous() for n in _TENSORS}
    metadata = {
        "format": FORMAT,
        "sample_id": sample.sample_id,
        "meta": json.dumps(sample.meta, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_sample(path: str | Path) -> LatentSample:
    """Read one sample; a missing, truncated or foreign file is a :class:`ShardError` naming it."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != FORMAT:
                raise ShardError(f"{path}: not a {FORMAT} file (format={md.get('format')!r})")
            missing = [n for n in _TENSORS if n not in f.keys()]  # noqa: SIM118 (safe_open has no __contains__)
            if missing:
                raise ShardError(f"{path}: lacks tensors {missing}")
            tensors = {n: f.get_tensor(n) for n in _TENSORS}
    except ShardError:
        raise
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise ShardError(f"{path}: unreadable latent sample ({type(e).__name__}: {e})") from e
    return LatentSample(sample_id=md["sample_id"], meta=json.loads(md["meta"]), **tensors)


@dataclass(frozen=True, kw_only=True)
class IndexEntry:
    """One line of ``index.jsonl``: what the trainer needs to bucket without opening the file."""

    sample_id: str
    file: str  # relative to the shard folder
    split: str  # "train" / "val" / "test" (by identity, from curation)
    num_slots: int
    person_ids: list[str]
    video_shape: list[int]  # [C, T, H, W]
    audio_frames: int  # Na
    duration: float  # seconds


def write_index(folder: str | Path, entries: list[IndexEntry]) -> Path:
    """Write ``folder/index.jsonl`` whole and atomically, sorted by sample id."""
    lines = [json.dumps(asdict(e), sort_keys=True) for e in sorted(entries, key=lambda e: e.sample_id)]
    path = Path(folder) / "index.jsonl"
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def read_index(folder: str | Path) -> list[IndexEntry]:
    """The entries of ``folder/index.jsonl``; a missing file or bad line is a :class:`ShardError`."""
    path = Path(folder) / "index.jsonl"
    if not path.is_file():
        raise ShardError(f"{path} does not exist: run `facevox encode MANIFEST --out {folder}` first")
    entries = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(IndexEntry(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as e:
            raise ShardError(f"{path}:{i}: bad index line ({e})") from e
    return entries


def write_null_caption(folder: str | Path, caption: Tensor, mask: Tensor) -> Path:
    """The empty caption's hidden states (L0, E) and mask (L0,), used for text dropout."""
    path = Path(folder) / "null_caption.safetensors"
    with atomic_path(path) as tmp:
        save_file(
            {"caption": caption.contiguous(), "caption_mask": mask.contiguous()},
            str(tmp),
            metadata={"format": FORMAT},
        )
    return path


def read_null_caption(folder: str | Path) -> tuple[Tensor, Tensor]:
    path = Path(folder) / "null_caption.safetensors"
    if not path.is_file():
        raise ShardError(f"{path} does not exist: rerun `facevox encode` (it writes the null caption)")
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("caption"), f.get_tensor("caption_mask")
