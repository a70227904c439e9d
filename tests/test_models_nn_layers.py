"""Generic layers: RoPE relative-position property, audio/video time alignment, patchify."""

from __future__ import annotations

import pytest
import torch

from facevox.nn.patchify import PatchEmbed3d, unpatchify
from facevox.nn.rope import apply_rotary, axis_widths, rotary_table
from facevox.nn.timestep import sinusoidal_features


def _score(q: torch.Tensor, k: torch.Tensor, pq: torch.Tensor, pk: torch.Tensor, dh: int) -> torch.Tensor:
    qr = apply_rotary(q, rotary_table(pq, dh))
    kr = apply_rotary(k, rotary_table(pk, dh))
    return (qr * kr).sum(-1)


def test_rope_depends_only_on_offsets() -> None:
    dh = 24
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 1, dh, generator=g), torch.randn(1, 2, 1, dh, generator=g)
    p1 = torch.tensor([[[3.0, 1.0, 2.0]]])
    p2 = torch.tensor([[[1.0, 4.0, 0.0]]])
    shift = torch.tensor([[[5.0, -2.0, 7.0]]])
    torch.testing.assert_close(_score(q, k, p1, p2, dh), _score(q, k, p1 + shift, p2 + shift, dh))
    assert not torch.allclose(_score(q, k, p1, p2, dh), _score(q, k, p1, p2 + shift, dh))


def test_audio_rope_is_video_time_rope() -> None:
    """A 1D position rotates exactly like a 3D one at (t, 0, 0), and only the time channels."""
    dh = 24
    t_w, _, _ = axis_widths(dh)
    x = torch.randn(2, 3, 5, dh)
    t = torch.rand(2, 5) * 10
    a = apply_rotary(x, rotary_table(t, dh))
    v = apply_rotary(x, rotary_table(torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], -1), dh))
    torch.testing.assert_close(a, v)
    torch.testing.assert_close(a[..., t_w:], x[..., t_w:])
    assert axis_widths(128) == (44, 42, 42)  # Wan / Ovi split


def test_patchify_round_trip_and_sinusoid() -> None:
    emb = PatchEmbed3d(3, 12, (1, 2, 2))
    x = torch.randn(2, 3, 4, 6, 8)
    assert emb(x).shape == (2, 4, 3, 4, 12)
    # Unpatchify inverts the (pt ph pw c) channel packing.
    tokens = torch.einsum("bcthw->bthwc", x).reshape(2, 4, 3, 2, 4, 2, 3).permute(0, 1, 2, 4, 3, 5, 6)
    tokens = tokens.reshape(2, 4 * 3 * 4, 2 * 2 * 3)
    torch.testing.assert_close(unpatchify(tokens, (4, 3, 4), (1, 2, 2)), x)
    f = sinusoidal_features(torch.tensor([0.0, 500.0]), 8)
    assert f.shape == (2, 8) and torch.allclose(f[0, :4], torch.ones(4))


def test_additive_mask_matches_boolean_mask() -> None:
    from facevox.nn.attention import attend, key_mask

    q, k, v = torch.randn(2, 2, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    valid = torch.tensor([[True, True, False, True, False], [True, False, False, False, False]])
    additive = torch.zeros(2, 1, 1, 5).masked_fill(~key_mask(valid), float("-inf"))
    torch.testing.assert_close(attend(q, k, v, key_mask(valid)), attend(q, k, v, additive))
    torch.testing.assert_close(
        attend(q, k, v, key_mask(valid))[1], attend(q[1:], k[1:, :, :1], v[1:, :, :1])[0]
    )


@pytest.mark.parametrize("mode", ["after", "before"])
def test_reference_regions_are_disjoint(mode: str) -> None:
    from facevox.models.positions import audio_reference_positions, video_reference_positions

    T, gap, views = 7, 4, 3
    slot_ids = torch.tensor([[0, 1, 2, 3]])
    pos = video_reference_positions(slot_ids, views, (2, 2), target_frames=T, gap=gap, mode=mode)
    t = pos[0, :, 0].reshape(4, views * 4)  # per slot
    for a in range(4):
        assert not set(t[a].tolist()) & set(range(T)), "reference time collides with target frames"
        for b in range(a + 1, 4):
            assert not set(t[a].tolist()) & set(t[b].tolist()), f"slots {a} and {b} overlap"
    assert (pos[0, :4, 1:] == torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])).all()
    ap = audio_reference_positions(
        slot_ids, 5, target_tokens=25, start=None, gap=8, time_scale=1.0, mode=mode
    )
    idx = ap[0].reshape(4, 5)
    assert all(not (set(idx[a].tolist()) & set(range(25))) for a in range(4))
    assert len(set(idx.flatten().tolist())) == 20
