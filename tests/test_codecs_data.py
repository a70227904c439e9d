"""Codec training media: face-centred crops from a world's ground-truth boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facevox.codecs.data import MediaBank, face_boxes


def _bank(with_boxes: bool) -> MediaBank:
    """One 40x60 clip, black except a white 10x10 'face' that moves right one pixel per frame."""
    t = 6
    video = np.zeros((t, 40, 60, 3), dtype=np.uint8)
    boxes = np.zeros((1, t, 4), dtype=np.float32)
    for i in range(t):
        video[i, 25:35, 40 + i : 50 + i] = 255
        boxes[0, i] = (40 + i, 25, 50 + i, 35)
    return MediaBank(videos=[video], audios=[], faces=[boxes] if with_boxes else None)


def test_face_crops_hold_the_face_random_crops_mostly_miss_it():
    bank = _bank(with_boxes=True)
    gen = torch.Generator().manual_seed(0)
    faces = bank.video_batch(32, 3, 16, gen, face_fraction=1.0)  # (B, 3, T, 16, 16) in [-1, 1]
    assert faces.shape == (32, 3, 3, 16, 16)
    # jitter is at most 16 / 8 = 2 px, so the whole 10x10 face stays inside every crop
    white = (faces[:, 0, 0] > 0).flatten(1).sum(1)
    assert bool((white == 100).all()), white
    randoms = bank.video_batch(32, 3, 16, torch.Generator().manual_seed(0), face_fraction=0.0)
    assert float(((randoms[:, 0, 0] > 0).flatten(1).sum(1) == 100).float().mean()) < 0.5


def test_face_crops_without_boxes_are_an_error():
    with pytest.raises(ValueError, match="face boxes"):
        _bank(with_boxes=False).video_batch(2, 3, 16, torch.Generator(), face_fraction=0.5)


def test_face_boxes_read_a_worlds_ground_truth(tmp_path):
    gt = tmp_path / "ground_truth" / "clips"
    gt.mkdir(parents=True)
    box = [[1.0, 2.0, 3.0, 4.0]] * 5
    (gt / "c0.json").write_text(json.dumps({"people": [{"boxes": box}, {"boxes": box}]}))
    got = face_boxes(tmp_path, [tmp_path / "videos" / "c0.mp4", tmp_path / "videos" / "other.mp4"])
    assert got[0].shape == (2, 5, 4) and got[1] is None
