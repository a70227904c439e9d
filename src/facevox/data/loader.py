"""Batches of latent samples for the trainer: bucketing, padding, a resumable order.

Samples in one batch share the video latent grid and the audio length (a *bucket*); identity slots
(``K``), face views (``V``), voice-reference frames (``Tr``) and caption tokens (``L``) are padded
to the batch maximum with masks. The order is a pure function of ``(seed, epoch)``, so a sampler
state of two integers resumes it exactly; with ``world`` ranks each global batch is cut into
``world`` equal slices, rank ``r`` taking slice ``r``.

Shape legend as in :mod:`facevox.data.shards`, with ``B`` the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from facevox.data.shards import IndexEntry, LatentSample, ShardError, read_index, read_sample


@dataclass(frozen=True, kw_only=True)
class LatentBatch:
    """A collated batch; padded groups have ``slot_ids == -1`` and all-False masks."""

    sample_ids: list[str]
    video_mean: Tensor  # (B, C, T, H, W)
    video_std: Tensor  # (B, C, T, H, W)
    audio_mean: Tensor  # (B, Na, Ca)
    audio_std: Tensor  # (B, Na, Ca)
    caption: Tensor  # (B, L, E) float32
    caption_mask: Tensor  # (B, L) bool
    caption_slot_ids: Tensor  # (B, L) long, -1 untagged
    slot_ids: Tensor  # (B, K) long, -1 padding
    face_refs: Tensor  # (B, K, V, C, 1, h, w)
    face_refs_mask: Tensor  # (B, K, V)
    voice_refs: Tensor  # (B, K, Tr, Ca)
    voice_refs_mask: Tensor  # (B, K, Tr)
    face_refs_self: Tensor  # (B, K, Vs, C, 1, h, w)
    face_refs_self_mask: Tensor  # (B, K, Vs)
    voice_refs_self: Tensor  # (B, K, Trs, Ca)
    voice_refs_self_mask: Tensor  # (B, K, Trs)
    # per sample, the speech turns inside the window: (group k, start s, end s), k indexing slot_ids
    turns: list[tuple[tuple[int, float, float], ...]] = field(default_factory=list)
    # (B, K, 4) each group's face box (x0, y0, x1, y1) in fractions of the frame; NaN where the shard
    # has none (shards encoded before boxes were written, padding groups)
    face_boxes: Tensor | None = None
    # (B,) bool: samples with no sound (photos, ``meta["modality"] == "video"``): training gives their
    # audio stream pure noise and no loss; None = every sample has both streams
    video_only: Tensor | None = None

    @property
    def size(self) -> int:
        return len(self.sample_ids)

    def to(self, device: torch.device) -> LatentBatch:
        """The batch with every tensor on ``device``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        moved: dict[str, Any] = {k: v.to(device) for k, v in values.items() if isinstance(v, Tensor)}
        return replace(self, **moved)


def window_turns(meta: dict[str, Any]) -> tuple[tuple[int, float, float], ...]:
    """A sample's speech turns (0-based slot, start, end in seconds from the window start), from the
    structured caption its shard carries (slots there are 1-based); () when it has none."""
    speech = (meta.get("caption") or {}).get("speech") or []
    return tuple((int(t["slot"]) - 1, float(t["start"]), float(t["end"])) for t in speech)


def window_face_boxes(sample: LatentSample) -> Tensor:
    """(K, 4) the sample's face boxes in fractions of the frame, NaN rows where its shard has none."""
    boxes = sample.meta.get("face_boxes")
    K = sample.num_slots
    if not boxes:
        return torch.full((K, 4), float("nan"))
    if len(boxes) != K or any(len(b) != 4 for b in boxes):
        raise ShardError(
            f"{sample.sample_id}: face_boxes {boxes} do not hold 4 numbers for each of {K} people"
        )
    return torch.tensor(boxes, dtype=torch.float32)


def _pad_to(t: Tensor, sizes: Sequence[int], value: float | bool = 0) -> Tensor:
    """Pad the leading ``len(sizes)`` axes of ``t`` at their end up to ``sizes``."""
    out = t.new_full((*sizes, *t.shape[len(sizes) :]), value)
    out[tuple(slice(0, n) for n in t.shape[: len(sizes)])] = t
    return out


def collate(samples: Sequence[LatentSample]) -> LatentBatch:
    """Stack samples of one bucket, padding K, V, Tr and L; a shape clash is a ShardError."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    v0, a0 = samples[0].video_mean.shape, samples[0].audio_mean.shape
    for s in samples:
        if s.video_mean.shape != v0 or s.audio_mean.shape != a0:
            raise ShardError(
                f"batch mixes latent shapes: {s.sample_id} has video {tuple(s.video_mean.shape)} / audio "
                f"{tuple(s.audio_mean.shape)}, {samples[0].sample_id} has {tuple(v0)} / {tuple(a0)}"
            )
    K = max(s.num_slots for s in samples)
    L = max(s.caption.shape[0] for s in samples)

    def refs(name: str) -> tuple[Tensor, Tensor]:
        n = max(getattr(s, name).shape[1] for s in samples)
        t = torch.stack([_pad_to(getattr(s, name), (K, n)) for s in samples])
        m = torch.stack([_pad_to(getattr(s, name + "_mask"), (K, n), False) for s in samples])
        return t, m

    fr, frm = refs("face_refs")
    vr, vrm = refs("voice_refs")
    frs, frsm = refs("face_refs_self")
    vrs, vrsm = refs("voice_refs_self")
    return LatentBatch(
        sample_ids=[s.sample_id for s in samples],
        video_mean=torch.stack([s.video_mean for s in samples]).float(),
        video_std=torch.stack([s.video_std for s in samples]).float(),
        audio_mean=torch.stack([s.audio_mean for s in samples]).float(),
        audio_std=torch.stack([s.audio_std for s in samples]).float(),
        caption=torch.stack([_pad_to(s.caption.float(), (L,)) for s in samples]),
        caption_mask=torch.stack([_pad_to(s.caption_mask, (L,), False) for s in samples]),
        caption_slot_ids=torch.stack([_pad_to(s.caption_slot_ids, (L,), -1) for s in samples]),
        slot_ids=torch.stack([_pad_to(s.slot_ids, (K,), -1) for s in samples]),
        face_refs=fr,
        face_refs_mask=frm,
        voice_refs=vr,
        voice_refs_mask=vrm,
        face_refs_self=frs,
        face_refs_self_mask=frsm,
        voice_refs_self=vrs,
        voice_refs_self_mask=vrsm,
        turns=[window_turns(s.meta) for s in samples],
        face_boxes=torch.stack([_pad_to(window_face_boxes(s), (K,), float("nan")) for s in samples]),
        video_only=torch.tensor([s.meta.get("modality") == "video" for s in samples]),
    )


class LatentDataset:
    """The samples of one shard folder (and of ``extra`` folders after it: photo shards joining clip
    shards), optionally restricted to some splits. ``folder`` names the first; ``path(i)`` a sample's file."""

    def __init__(
        self, folder: str | Path, splits: Sequence[str] | None = None, extra: Sequence[str | Path] = ()
    ) -> None:
        self.folder = Path(folder)
        self.entries: list[IndexEntry] = []
        self._folders: list[Path] = []
        self.sizes: list[int] = []  # samples per folder, ``folder`` first: entries are in that order
        for f in (self.folder, *map(Path, extra)):
            entries = read_index(f)
            if splits is not None:
                entries = [e for e in entries if e.split in splits]
            if not entries:
                raise ShardError(f"{f}: no samples in splits {list(splits or [])}")
            self.entries += entries
            self._folders += [f] * len(entries)
            self.sizes.append(len(entries))

    def __len__(self) -> int:
        return len(self.entries)

    def path(self, i: int) -> Path:
        return self._folders[i] / self.entries[i].file

    def __getitem__(self, i: int) -> LatentSample:
        return read_sample(self.path(i))

    def batch(self, indices: Sequence[int]) -> LatentBatch:
        return collate([self[i] for i in indices])


class BucketSampler:
    """Global batches of ``batch_size * world`` indices from one bucket each, in a seeded order.

    ``bucket_by_slots`` also separates samples by their number of people, which keeps padding at
    zero at the price of smaller buckets. Buckets smaller than a global batch are dropped (logged
    by the caller through :attr:`dropped`).
    """

    def __init__(
        self,
        entries: Sequence[IndexEntry],
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        bucket_by_slots: bool = False,
    ) -> None:
        if batch_size < 1 or world < 1 or not 0 <= rank < world:
            raise ValueError(f"bad sampler geometry: batch_size={batch_size}, rank={rank}, world={world}")
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for i, e in enumerate(entries):
            key = (tuple(e.video_shape), e.audio_frames) + ((e.num_slots,) if bucket_by_slots else ())
            buckets[key].append(i)
        self.buckets = [buckets[k] for k in sorted(buckets)]
        glob = batch_size * world
        self.dropped = sum(len(b) for b in self.buckets if len(b) < glob)
        if not any(len(b) >= glob for b in self.buckets):
            raise ShardError(
                f"no bucket holds a global batch of {glob} samples (bucket sizes "
                f"{sorted(len(b) for b in self.buckets)}); lower the batch size"
            )
        self.epoch, self.position = 0, 0
        self._order: list[list[int]] | None = None

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        glob = self.batch_size * self.world
        batches = []
        for b in self.buckets:
            idx = [b[i] for i in rng.permutation(len(b))]
            batches += [idx[i : i + glob] for i in range(0, len(idx) - glob + 1, glob)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __next__(self) -> list[int]:
        """This rank's slice of the next global batch."""
        if self._order is None:
            self._order = self._epoch_batches(self.epoch)
        if self.position >= len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_batches(self.epoch)
        batch = self._order[self.position]
        self.position += 1
        return batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def __iter__(self) -> BucketSampler:
        return self

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


class MixedSampler:
    """Batches of two bucket samplers over one dataset (clip windows first, then photos at
    ``offset``): each batch comes from the second with probability ``share``, drawn from
    ``(seed, batch number)`` so a state of the two samplers' states and a counter resumes it exactly."""

    def __init__(
        self, first: BucketSampler, second: BucketSampler, share: float, offset: int, seed: int = 0
    ) -> None:
        if not 0 < share < 1:
            raise ValueError(f"the second sampler's share of batches must be in (0, 1), got {share}")
        self.first, self.second, self.share, self.offset, self.seed = first, second, share, offset, seed
        self.count = 0
        self.dropped = first.dropped + second.dropped

    def __next__(self) -> list[int]:
        second = np.random.default_rng([self.seed, 7, self.count]).random() < self.share
        self.count += 1
        return [self.offset + i for i in next(self.second)] if second else next(self.first)

    def __iter__(self) -> MixedSampler:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "first": self.first.state_dict(),
            "second": self.second.state_dict(),
            "count": self.count,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "first" not in state:
            raise ValueError("this sampler state was saved by a run without photos; resume it without photos")
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])
        self.count = int(state["count"])
