"""Face references placed over the box where each face is drawn (ref_position_mode="placed")."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from facevox.models import DualTowerDiT, References, get_config
from facevox.models.positions import video_reference_positions
from model_inputs import make_inputs


def _boxes(batch: int, slots: int) -> torch.Tensor:
    """(B, K, 4) side-by-side boxes in the top half of the frame."""
    out = torch.zeros(batch, slots, 4)
    for k in range(slots):
        out[:, k] = torch.tensor([k / slots, 0.0, (k + 1) / slots, 0.5])
    return out


def _placed(slots: list[int], grid: int, boxes: torch.Tensor, **kw: object) -> torch.Tensor:
    """video_reference_positions in placed mode on an 8x8 target grid, one view per slot unless told."""
    args: dict = {"target_frames": 3, "gap": 4, "mode": "placed", "boxes": boxes, "target_hw": (8, 8), **kw}
    views = args.pop("views", 1)
    return video_reference_positions(torch.tensor([slots]), views, (grid, grid), **args)


def test_views_span_their_box_on_the_target_grid() -> None:
    """A 4x4 view over a box of 4x4 target tokens lands exactly on those tokens' (h, w) (margin 0)."""
    boxes = torch.tensor([[[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.5]]])
    pos = _placed([0, 1], 4, boxes, views=2, margin=0.0).reshape(2, 2, 4, 4, 3)  # (K, V, h, w, (t, h, w))
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    torch.testing.assert_close(pos[0, :, :, :, 1], (rows + 4).expand(2, 4, 4))
    torch.testing.assert_close(pos[0, :, :, :, 2], (cols + 2).expand(2, 4, 4))
    torch.testing.assert_close(pos[1, :, :, :, 1], rows.expand(2, 4, 4))
    # time as "after": slot k's view v at frame T + k * gap + v
    assert pos[0, :, 0, 0, 0].tolist() == [3.0, 4.0] and pos[1, :, 0, 0, 0].tolist() == [7.0, 8.0]
    # a box half the size squeezes the same 4x4 view into 2x2 tokens' span
    small = _placed([0], 4, boxes[:, :1] / 2, margin=0.0).reshape(4, 4, 3)
    assert small[:, 0, 1].tolist() == pytest.approx([1.75, 2.25, 2.75, 3.25])


def test_views_show_the_grown_square_a_face_crop_shows() -> None:
    """A crop is the face box grown by the margin on each side, padded square: a 2x4-token box with
    margin 0.25 is shown by a view spanning 6x6 tokens about the box's centre."""
    boxes = torch.tensor([[[0.25, 0.25, 0.75, 0.5]]])  # on an 8x8 grid: rows 2-4, columns 2-6
    pos = _placed([0], 3, boxes, target_frames=1, margin=0.25).reshape(3, 3, 3)
    # centre (row 3, column 4) in cell units, half side 4 * 0.75 = 3: cell centres at -2, 0, +2 around it
    assert pos[:, 0, 1].tolist() == pytest.approx([0.5, 2.5, 4.5])
    assert pos[0, :, 2].tolist() == pytest.approx([1.5, 3.5, 5.5])


def test_padding_groups_need_no_box_and_missing_boxes_are_refused() -> None:
    boxes = torch.full((1, 2, 4), float("nan"))
    boxes[0, 0] = torch.tensor([0.1, 0.1, 0.5, 0.5])
    pos = _placed([0, -1], 4, boxes)
    assert torch.isfinite(pos).all()
    with pytest.raises(ValueError, match="face box for every referenced person"):
        _placed([0, 1], 4, boxes)
    with pytest.raises(ValueError, match="needs the face boxes"):
        video_reference_positions(torch.tensor([[0]]), 1, (4, 4), target_frames=3, gap=4, mode="placed")


@pytest.fixture(scope="module")
def placed() -> DualTowerDiT:
    torch.manual_seed(0)
    m = DualTowerDiT(dataclasses.replace(get_config("debug"), ref_position_mode="placed")).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if ".ref." in name or name.startswith("identity"):
                p.normal_(0, 0.1)
    return m


def _inputs(model: DualTowerDiT, boxes: torch.Tensor | None, seed: int = 0):  # type: ignore[no-untyped-def]
    video, audio = make_inputs(model.config, slots=2, views=2, hw=(8, 8), seed=seed)
    assert video.references is not None
    return dataclasses.replace(video, references=dataclasses.replace(video.references, boxes=boxes)), audio


def test_where_the_face_is_placed_changes_the_output(placed: DualTowerDiT) -> None:
    boxes = _boxes(2, 2)
    moved = boxes.clone()
    moved[:, :, [1, 3]] += 0.5  # both faces to the bottom half
    with torch.no_grad():
        a = placed(*_inputs(placed, boxes))
        b = placed(*_inputs(placed, moved))
        c = placed(*_inputs(placed, boxes.clone()))
    assert (a.video - b.video).abs().max() > 1e-4
    torch.testing.assert_close(a.video, c.video)


def test_placed_slot_order_is_irrelevant(placed: DualTowerDiT) -> None:
    video, audio = _inputs(placed, _boxes(2, 2))
    r = video.references
    assert r is not None and r.boxes is not None
    perm = [1, 0]
    swapped = References(
        latents=r.latents[:, perm], mask=r.mask[:, perm], slot_ids=r.slot_ids[:, perm], boxes=r.boxes[:, perm]
    )
    with torch.no_grad():
        a = placed(video, audio)
        b = placed(dataclasses.replace(video, references=swapped), audio)
    torch.testing.assert_close(a.video, b.video, atol=1e-5, rtol=0)


def test_placed_cache_matches_uncached_and_checks_the_frame(placed: DualTowerDiT) -> None:
    video, audio = _inputs(placed, _boxes(2, 2))
    with torch.no_grad():
        ref = placed(video, audio)
        cache = placed.prepare_references(
            video.references,
            audio.references,
            video_frames=video.latents.shape[2],
            audio_tokens=audio.latents.shape[1],
            video_hw=(8, 8),
        )
        got = placed(
            dataclasses.replace(video, references=None),
            dataclasses.replace(audio, references=None),
            references=cache,
        )
        torch.testing.assert_close(got.video, ref.video, atol=1e-6, rtol=0)
        wider = dataclasses.replace(
            video, latents=torch.randn(2, video.latents.shape[1], 3, 8, 12), references=None
        )
        with pytest.raises(ValueError, match="placed the faces in a"):
            placed(wider, dataclasses.replace(audio, references=None), references=cache)
        with pytest.raises(ValueError, match="needs the face boxes"):
            placed(*_inputs(placed, None))
