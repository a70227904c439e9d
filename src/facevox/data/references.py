"""Identity-reference preprocessing shared by ``facevox encode`` and generation.

Both sides must turn a face crop or a voice clip into codec input the same way, or the model sees
references at inference unlike those it trained on. Face crops come from curation's crop
(:func:`facevox.curate.faces.crop`: the detected box grown by ``crop_margin``); a user's photo goes
through :func:`face_crop_from_photo`, which detects and crops with the same code.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from facevox.curate.faces import crop


class ReferenceError(ValueError):
    """A face image without a face, or a voice clip without usable speech; the message says which."""


def face_reference(image: np.ndarray, size: int) -> Tensor:
    """An RGB uint8 face crop (h, w, 3) -> (3, size, size) float in [-1, 1], padded square with white.

    White padding follows the release (face crops with the background painted white).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 8:
        raise ReferenceError(
            f"a face reference must be an RGB uint8 image of at least 8x8, got {image.shape} {image.dtype}"
        )
    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.full((side, side, 3), 255, np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = image
    resized = cv2.resize(
        canvas, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    )
    return torch.from_numpy(resized).permute(2, 0, 1).float() / 127.5 - 1.0


def largest_face(photo: np.ndarray, min_size: int = 24) -> list[float]:
    """The box ``x0, y0, x1, y1`` (pixels) of the largest face of an RGB photo; ReferenceError if none."""
    from facevox.recognisers.faces import detect_faces

    boxes = detect_faces(photo, min_size=min_size)
    if len(boxes) == 0:
        raise ReferenceError(
            "no face found in the image (Haar detector, frontal faces up to ~30 degrees of yaw)"
        )
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return [float(x) for x in boxes[int(np.argmax(areas))]]


def face_crop_at(photo: np.ndarray, box: list[float], margin: float = 0.25) -> np.ndarray:
    """The face at ``box`` of an RGB photo, cropped as curation crops (the box grown by ``margin``)."""
    return np.ascontiguousarray(crop(photo, box, margin))


def face_crop_from_photo(photo: np.ndarray, margin: float = 0.25, min_size: int = 24) -> np.ndarray:
    """The largest face of an RGB photo, cropped as curation crops; ReferenceError if there is none."""
    return face_crop_at(photo, largest_face(photo, min_size), margin)


def voice_reference(
    waveform: np.ndarray, sample_rate: int, max_seconds: float, codec_rate: int = 16_000
) -> Tensor:
    """Mono float audio -> (1, S) at ``codec_rate``, at most ``max_seconds`` long, peak-normalised to 0.9.

    ReferenceError for empty or silent audio. Resampling uses librosa's soxr backend.
    """
    audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if audio.size == 0 or not np.isfinite(audio).all():
        raise ReferenceError("the voice reference is empty or holds non-finite samples")
    if sample_rate != codec_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=codec_rate, res_type="soxr_hq")
    audio = audio[: int(max_seconds * codec_rate)]
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak < 1e-3:
        raise ReferenceError("the voice reference is silent (peak below -60 dBFS)")
    return torch.from_numpy(audio * (0.9 / peak)).unsqueeze(0)
