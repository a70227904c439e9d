"""Generation memory options (bf16 towers, CPU offload between components) and exact determinism."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facevox.io.media import read_av
from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person
from facevox.pipeline.pipeline import GenerateConfig

sys.path.insert(0, str(Path(__file__).parent))
from curate_fixtures import have_espeak  # noqa: E402
from pipeline_fixtures import make_inputs, make_pipeline_dir  # noqa: E402

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationRequest]:
    pipe_dir = make_pipeline_dir(tmp_path_factory.mktemp("pipe"))
    inputs = make_inputs(tmp_path_factory.mktemp("inputs"))
    alice = Person(name="alice", faces=(str(inputs["alice.png"]),), voice=str(inputs["alice.wav"]))
    return pipe_dir, GenerationRequest(name="c", people=(alice,), script="[alice] Hello there.", seed=5)


def test_same_seed_gives_identical_frames_and_audio(setup, tmp_path: Path) -> None:
    pipe_dir, req = setup
    pipe = FacevoxPipeline.from_pretrained(pipe_dir)
    cfg = GenerateConfig(steps=3)
    pipe(req, tmp_path / "warm", config=cfg)  # the first libx264 encode of a process may differ in bits
    a, b = (read_av(pipe(req, tmp_path / d, config=cfg).video_path) for d in ("a", "b"))
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.audio, b.audio)
    # and a fresh pipeline from the same folder draws the same sample
    again = FacevoxPipeline.from_pretrained(pipe_dir)
    c = read_av(again(req, tmp_path / "c", config=cfg).video_path)
    np.testing.assert_array_equal(a.video, c.video)


def test_offload_and_bf16(setup, tmp_path: Path) -> None:
    pipe_dir, req = setup
    cfg = GenerateConfig(steps=2, solver="euler")
    ref = read_av(FacevoxPipeline.from_pretrained(pipe_dir)(req, tmp_path / "f32", config=cfg).video_path)
    off = FacevoxPipeline.from_pretrained(pipe_dir, offload=True)
    got = read_av(off(req, tmp_path / "off", config=cfg).video_path)
    assert np.abs(got.video.astype(int) - ref.video).mean() < 1.0  # same computation, other placement
    assert all(p.device.type == "cpu" for p in off.model.parameters())
    bf16 = FacevoxPipeline.from_pretrained(pipe_dir, dtype=torch.bfloat16)
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    low = read_av(bf16(req, tmp_path / "bf16", config=cfg).video_path)
    assert low.video.shape == ref.video.shape
    # bf16 rounding moves the sample a little, not to another one
    assert 0 < np.abs(low.video.astype(int) - ref.video).mean() < 8.0
