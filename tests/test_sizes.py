"""The sizes trained here: ``wide`` is ``tiny`` at twice the width and nothing else."""

from __future__ import annotations

import dataclasses

import torch

from facevox.models import DualTowerDiT, get_config
from model_inputs import make_inputs


def test_wide_is_tiny_at_twice_the_width() -> None:
    tiny, wide = get_config("tiny"), get_config("wide")
    for t, w in ((tiny.video, wide.video), (tiny.audio, wide.audio)):
        assert (w.dim, w.ffn_dim, w.heads) == (2 * t.dim, 2 * t.ffn_dim, t.heads)  # head width 32 -> 64
        assert dataclasses.replace(w, dim=t.dim, ffn_dim=t.ffn_dim, ref_lora_rank=t.ref_lora_rank) == t
    assert dataclasses.replace(wide, name="tiny", video=tiny.video, audio=tiny.audio) == tiny


def test_wide_runs_forward_and_backward_with_the_shapes_of_tiny() -> None:
    torch.manual_seed(0)
    outs = {}
    for name in ("tiny", "wide"):
        cfg = get_config(name)
        video, audio = make_inputs(cfg, batch=1, frames=2, hw=(4, 4), audio_len=8, text_len=5)
        out = DualTowerDiT(cfg)(video, audio)
        (out.video.square().mean() + out.audio.square().mean()).backward()
        outs[name] = (out.video.shape, out.audio.shape)
    assert outs["tiny"] == outs["wide"]
