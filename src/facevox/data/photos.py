"""``facevox encode-photos PHOTOS --out SHARDS``: an identity-labelled photo set -> one-frame latent shards.

The input is laid out as face-identity sets are, one folder per person (``photos/{person}/*.png``,
or ``{person}/*.png`` directly; ``facevox synth --photos`` writes one). Every photo with a face
becomes one :class:`~facevox.data.shards.LatentSample` of the same format as a clip window, so the
trainer mixes them (``TrainConfig.photos``):

- video: the photo resized to ``width x height`` through the video codec as one frame
  (``T = 1`` latent frame: the codec's image path, as face references and frame 0 take);
- face references: crops of the person's *other* photos (``face_refs``, up to ``max_face_views``)
  and of this photo (``face_refs_self``), cropped around the largest detected face (Haar, the
  detector references from users' photos go through) exactly as generation crops a user's photo;
- no sound: ``meta["modality"] = "video"``; the audio latents are the codec's silence for one
  latent frame's duration and voice references are empty (masked), so training gives the audio
  stream pure noise and no loss for these samples;
- the structured caption curation writes, described from the photo (scene, place, skin and hair),
  with no speech.

Splits are by person, a seeded choice as ``facevox encode`` makes. A photo without a face, or that
cannot be read, is skipped with its reason in ``skipped.jsonl``; a person with fewer than two usable
photos is skipped whole (nobody to take a reference from). Resumable like ``facevox encode``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from facevox.alignment import Clock
from facevox.curate.captions import describe_scene, describe_subject, render
from facevox.curate.faces import appearance
from facevox.curate.shots import scene_stats
from facevox.data.encode import (
    Codecs,
    EncodeConfig,
    EncodeError,
    encode_audio,
    encode_record,
    heldout_people,
    module_device,
    on_cpu,
    open_shard_folder,
    video_tensor,
)
from facevox.data.references import ReferenceError, face_crop_at, face_reference, largest_face
from facevox.data.shards import (
    IndexEntry,
    LatentSample,
    ShardError,
    read_sample,
    write_index,
    write_sample,
)
from facevox.io.atomic import atomic_write_json, atomic_write_text
from facevox.layout import frame_fractions

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def photo_people(photo_dir: Path) -> dict[str, list[Path]]:
    """Person id -> their photos (sorted), from ``photo_dir/photos/*/`` or ``photo_dir/*/``."""
    if not photo_dir.is_dir():
        raise EncodeError(
            f"{photo_dir} is not a folder: give a photo set (`facevox synth --photos VIEWS --out DIR`)"
        )
    root = photo_dir / "photos" if (photo_dir / "photos").is_dir() else photo_dir
    people = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }
    people = {k: v for k, v in people.items() if v}
    if not people:
        raise EncodeError(
            f"{photo_dir} holds no photo folders (one folder of .png/.jpg photos per person, directly or "
            "under photos/): make one with `facevox synth --photos VIEWS --out DIR`"
        )
    return people


def photo_caption(frame: np.ndarray, box: list[float], person_id: str) -> dict[str, Any]:
    """The structured caption of a one-person photo as curation describes a clip, with no speech."""
    stats: dict[str, Any] = scene_stats(frame)
    height, width = frame.shape[:2]
    return {
        "scene": describe_scene(
            box[3] - box[1], height, float(stats["brightness"]), list(stats["background_rgb"]), 1
        ),
        "subjects": [describe_subject(1, person_id, (box[0] + box[2]) / 2, width, appearance(frame, box))],
        "speech": [],
    }


class _PhotoEncoder:
    def __init__(self, cfg: EncodeConfig, codecs: Codecs, clock: Clock) -> None:
        self.cfg, self.c, self.fps = cfg, codecs, clock.fps
        silence = torch.zeros(1, max(1, round(clock.latent_seconds * codecs.audio.sample_rate)))
        self.audio_mean, self.audio_std = encode_audio(codecs, silence)  # (Na, Ca)
        self.no_voice = torch.zeros(1, 1, codecs.audio.latent_channels)  # (K=1, Tr=1, Ca), masked

    def person(
        self, person_id: str, split: str, found: list[tuple[Path, np.ndarray, list[float]]]
    ) -> list[LatentSample]:
        """One sample per photo of one person, every crop, frame and caption encoded once (in one batch)."""
        cfg, dev = self.cfg, module_device(self.c.video)
        crops = torch.stack([face_reference(face_crop_at(f, box), cfg.face_size) for _, f, box in found])
        faces = self.c.video.encode_image(crops.to(dev)).mean.cpu()  # (N, C, 1, h, w)
        frames = torch.cat(
            [video_tensor(f[None], cfg.width, cfg.height) for _, f, _ in found]
        )  # (N, 3, 1, H, W)
        video = on_cpu(self.c.video.encode(frames.to(dev)))
        captions = [photo_caption(f, box, person_id) for _, f, box in found]
        texts = [render(c) for c in captions]
        enc = on_cpu(self.c.text.encode(texts))
        n, V = len(found), min(cfg.max_face_views, len(found) - 1)
        out = []
        for i, (path, frame, box) in enumerate(found):
            others = [(i + j) % n for j in range(1, V + 1)]  # the next photos: every view gets used
            L = int(enc.mask[i].sum())
            out.append(
                LatentSample(
                    sample_id=f"{person_id}_{path.stem}",
                    video_mean=video.mean[i],
                    video_std=video.std[i],
                    audio_mean=self.audio_mean.clone(),
                    audio_std=self.audio_std.clone(),
                    caption=enc.hidden[i, :L].half(),
                    caption_mask=enc.mask[i, :L],
                    caption_slot_ids=enc.slot_ids[i, :L],
                    slot_ids=torch.tensor([0]),
                    face_refs=faces[others][None].clone(),
                    face_refs_mask=torch.ones(1, V, dtype=torch.bool),
                    voice_refs=self.no_voice.clone(),
                    voice_refs_mask=torch.zeros(1, 1, dtype=torch.bool),
                    face_refs_self=faces[i : i + 1][None].clone(),
                    face_refs_self_mask=torch.ones(1, 1, dtype=torch.bool),
                    voice_refs_self=self.no_voice.clone(),
                    voice_refs_self_mask=torch.zeros(1, 1, dtype=torch.bool),
                    meta={
                        "person_ids": [person_id],
                        "split": split,
                        "source": str(path),
                        "modality": "video",  # no sound: the audio stream is noise without loss in training
                        "fps": self.fps,
                        "sample_rate": 16_000,
                        "caption_text": texts[i],
                        "caption": captions[i],
                        "face_boxes": [frame_fractions(box, frame.shape)],
                    },
                )
            )
        return out


def _read_photo(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise ReferenceError(f"cannot read {path}: {e}") from e


def encode_photos(
    cfg: EncodeConfig, photo_dir: str | Path, out_dir: str | Path, fps: float = 25.0, progress: bool = True
) -> dict[str, Any]:
    """Encode every usable photo of ``photo_dir`` into ``out_dir``; returns the counts. ``fps``: the frame
    rate of the clip shards the photos will train with (their clocks must agree; a photo has none)."""
    src, out = Path(photo_dir), Path(out_dir)
    people = photo_people(src)
    codecs, clock, fingerprints = open_shard_folder(cfg, out, fps)
    enc = _PhotoEncoder(cfg, codecs, clock)
    heldout = heldout_people(set(people), cfg)
    entries: list[IndexEntry] = []
    skipped: list[dict[str, Any]] = []
    made = reused = 0
    t0 = time.perf_counter()
    total = sum(len(v) for v in people.values())
    with tqdm(total=total, desc="encode photos", unit="photo", disable=not progress) as bar:
        for pid, paths in people.items():
            split = "heldout" if pid in heldout else "train"
            found: list[tuple[Path, np.ndarray, list[float]]] = []
            for path in paths:
                try:
                    frame = _read_photo(path)
                    found.append((path, frame, largest_face(frame)))
                except ReferenceError as e:
                    skipped.append({"sample_id": f"{pid}/{path.name}", "reason": "no_face", "detail": str(e)})
            if len(found) < 2:
                skipped.append(
                    {
                        "sample_id": pid,
                        "reason": "too_few_photos",
                        "detail": f"{len(found)} photo(s) with a face, need 2",
                    }
                )
                bar.update(len(paths))
                continue
            files = [out / "samples" / f"{pid}_{path.stem}.safetensors" for path, _, _ in found]
            samples: list[LatentSample] | None = None
            if all(f.is_file() for f in files):
                try:
                    samples = [read_sample(f) for f in files]
                    reused += len(samples)
                except ShardError as e:
                    log.warning("redoing %s: %s", pid, e)
            if samples is None:
                samples = enc.person(pid, split, found)
                for file, sample in zip(files, samples, strict=True):
                    write_sample(file, sample)
                made += len(samples)
            for sample in samples:
                entries.append(
                    IndexEntry(
                        sample_id=sample.sample_id,
                        file=f"samples/{sample.sample_id}.safetensors",
                        split=split,
                        num_slots=1,
                        person_ids=[pid],
                        video_shape=list(sample.video_mean.shape),
                        audio_frames=int(sample.audio_mean.shape[0]),
                        duration=0.0,
                    )
                )
            bar.update(len(paths))
    wall = time.perf_counter() - t0
    write_index(out, entries)
    atomic_write_text(out / "skipped.jsonl", "".join(json.dumps(s, sort_keys=True) + "\n" for s in skipped))
    counts = {
        "photos": len(entries),
        "people": len({e.person_ids[0] for e in entries}),
        "train": sum(e.split == "train" for e in entries),
        "heldout": sum(e.split == "heldout" for e in entries),
        "made_this_run": made,
        "reused": reused,
        "skipped": len(skipped),
        "wall_seconds": round(wall, 2),
        "photos_per_second": round(made / wall, 2) if made and wall > 0 else None,
    }
    atomic_write_json(
        out / "encode.json",
        {**encode_record(cfg, fingerprints, clock), "kind": "photos", "counts": counts},
    )
    log.info("encode-photos %s: %s", out, counts)
    return counts
