"""The recogniser bars (slow): real pretrained detectors and embedders treat our people as people."""

from pathlib import Path

import pytest

from facevox.synth.bars import EER_BAR, FACE_RECALL_BAR, face_detection_recall, fresh_face_eer
from facevox.synth.config import SynthConfig
from facevox.synth.world import generate_world

pytestmark = pytest.mark.slow


def test_haar_finds_faces_in_world_frames(tmp_path: Path) -> None:
    cfg = SynthConfig(num_people=12, heldout_people=3, num_clips=16, max_duration=4.0, seed=11)
    generate_world(cfg, tmp_path, progress=False)
    result = face_detection_recall(tmp_path, frame_stride=5)
    assert result["faces"] >= 300
    assert result["recall"] >= FACE_RECALL_BAR, result


def test_dlib_separates_fresh_identities_across_views() -> None:
    result = fresh_face_eer(num_identities=50, views=4, seed=2024)
    assert result["eer"] <= EER_BAR, result
    assert result["haar_recall"] >= FACE_RECALL_BAR, result
