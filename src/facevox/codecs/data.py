"""Training media for the codecs: every mp4 of a folder, decoded once and sampled at random.

A synthetic world folder (one with ``ground_truth/clips``) contributes only its train-split clips,
so the held-out people stay unseen by the codecs; any other folder contributes every ``*.mp4``.
Video is kept resized (short side ``short_side`` pixels) as uint8; audio as float32 mono. A world's
ground-truth face boxes come along (mapped into the resized view), so a share of the crops can be
centred on a face: at CPU budgets a codec trained on random crops spends most of its capacity on
background, and identity lives in the face.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from facevox.io.media import MediaError, read_audio, read_av

log = logging.getLogger(__name__)


def list_clips(folder: str | Path, split: str = "train") -> list[Path]:
    """The mp4s to use from ``folder`` (a world's ``split`` clips, or every mp4 found)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data folder {folder} does not exist")
    gt = folder / "ground_truth" / "clips"
    if gt.is_dir():
        paths = []
        for meta in sorted(gt.glob("*.json")):
            info = json.loads(meta.read_text())
            video = folder / "videos" / f"{info['clip_id']}.mp4"
            if info.get("split") == split and video.is_file():
                paths.append(video)
    else:
        paths = sorted(folder.rglob("*.mp4"))
    if not paths:
        raise ValueError(f"no {split} mp4 clips found under {folder}")
    return paths


def face_boxes(folder: str | Path, paths: list[Path]) -> list[np.ndarray | None]:
    """Per clip of ``paths``, its faces' boxes ``(P, T, 4)`` (x0, y0, x1, y1 in the clip's own pixels)
    from a world's ground truth; None for a clip with no ground truth (a plain folder of mp4s)."""
    gt = Path(folder) / "ground_truth" / "clips"
    out: list[np.ndarray | None] = []
    for path in paths:
        meta = gt / f"{path.stem}.json"
        if not meta.is_file():
            out.append(None)
            continue
        people = json.loads(meta.read_text())["people"]
        out.append(np.asarray([p["boxes"] for p in people], dtype=np.float32) if people else None)
    return out


def _resize_short_side(video: np.ndarray, short_side: int) -> np.ndarray:
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    h, w = frames.shape[-2:]
    scale = short_side / min(h, w)
    size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
    out = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass
class MediaBank:
    """Decoded clips in memory."""

    videos: list[np.ndarray]  # each (T, H, W, 3) uint8
    audios: list[np.ndarray]  # each (S,) float32
    faces: list[np.ndarray | None] | None = None  # per video: (P, T, 4) boxes in its resized pixels

    @classmethod
    def load(
        cls,
        paths: list[Path],
        want_video: bool,
        want_audio: bool,
        sample_rate: int = 16_000,
        short_side: int = 72,
        max_clips: int | None = None,
        boxes: list[np.ndarray | None] | None = None,
    ) -> MediaBank:
        """``boxes``: per path, its face boxes in the clip's own pixels (:func:`face_boxes`)."""
        videos, audios, faces = [], [], []
        for i, path in enumerate(tqdm(paths[:max_clips], desc="reading clips", unit="clip")):
            try:
                if not want_video:  # audio only: skip decoding the frames
                    audios.append(np.asarray(read_audio(path, sample_rate), dtype=np.float32))
                    continue
                clip = read_av(path, sample_rate=sample_rate)
            except MediaError as err:
                log.warning("skipping %s: %s", path, err)
                continue
            videos.append(_resize_short_side(clip.video, short_side))
            if boxes is not None and boxes[i] is not None:
                scale = videos[-1].shape[1] / clip.video.shape[1]  # the resize keeps the aspect
                faces.append(boxes[i] * scale)
            else:
                faces.append(None)
            if want_audio and clip.audio is not None:
                audios.append(clip.audio.astype(np.float32))
        if want_video and not videos:
            raise ValueError("no readable video in the training clips")
        if want_audio and not audios:
            raise ValueError("no readable audio in the training clips")
        return cls(videos=videos, audios=audios, faces=faces if boxes is not None else None)

    def video_batch(
        self, batch: int, frames: int, size: int, gen: torch.Generator, face_fraction: float = 0.0
    ) -> torch.Tensor:
        """Random (B, 3, frames, size, size) crops in [-1, 1], randomly mirrored; a ``face_fraction``
        share of them centred (jittered by up to size/8) on a face at the crop's first frame."""
        if face_fraction > 0 and not (self.faces and any(f is not None for f in self.faces)):
            raise ValueError("face-centred crops need face boxes: train on a synthetic world folder")
        out = []
        for _ in range(batch):
            i = int(torch.randint(len(self.videos), (1,), generator=gen))
            clip = self.videos[i]
            t, h, w, _ = clip.shape
            if t < frames or h < size or w < size:
                raise ValueError(f"clip {clip.shape} too small for {frames} frames of {size}x{size}")
            t0 = int(torch.randint(t - frames + 1, (1,), generator=gen))
            y0 = int(torch.randint(h - size + 1, (1,), generator=gen))
            x0 = int(torch.randint(w - size + 1, (1,), generator=gen))
            boxes = self.faces[i] if self.faces else None
            if boxes is not None and bool(torch.rand((), generator=gen) < face_fraction):
                x_a, y_a, x_b, y_b = boxes[int(torch.randint(len(boxes), (1,), generator=gen)), t0]
                jy, jx = (torch.randint(-(size // 8), size // 8 + 1, (2,), generator=gen)).tolist()
                y0 = int(np.clip(round((y_a + y_b - size) / 2) + jy, 0, h - size))
                x0 = int(np.clip(round((x_a + x_b - size) / 2) + jx, 0, w - size))
            crop = torch.from_numpy(clip[t0 : t0 + frames, y0 : y0 + size, x0 : x0 + size])
            if bool(torch.rand((), generator=gen) < 0.5):
                crop = crop.flip(2)
            out.append(crop.permute(3, 0, 1, 2).float() / 127.5 - 1.0)  # (3, T, H, W)
        return torch.stack(out)

    def audio_batch(self, batch: int, samples: int, gen: torch.Generator) -> torch.Tensor:
        """Random (B, 1, samples) segments, zero-padded when a clip is shorter."""
        out = torch.zeros(batch, 1, samples)
        for i in range(batch):
            audio = self.audios[int(torch.randint(len(self.audios), (1,), generator=gen))]
            start = int(torch.randint(max(1, audio.shape[0] - samples + 1), (1,), generator=gen))
            seg = torch.from_numpy(audio[start : start + samples])
            out[i, 0, : seg.shape[0]] = seg
        return out
