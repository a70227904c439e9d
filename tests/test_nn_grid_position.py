"""The absolute grid-position signal on video tokens."""

from __future__ import annotations

import torch

from facevox.models import get_config
from facevox.nn.patchify import GridPositionEmbedding


def test_starts_as_identity_and_gives_every_cell_its_own_features() -> None:
    emb = GridPositionEmbedding(dim=16)
    x = torch.randn(2, 3, 4, 5, 16)
    torch.testing.assert_close(emb(x), x)  # zero-initialised projection: no effect until trained
    f = emb.features(4, 5, torch.device("cpu")).reshape(20, -1)
    assert torch.cdist(f, f).add(torch.eye(20) * 9).min() > 0.1  # distinct cells, distinct features
    # normalised coordinates: a larger grid spans the same range (first / last cell centres move
    # towards -1 / 1, the signal does not grow with the frame)
    assert float(emb.features(8, 10, torch.device("cpu")).abs().max()) <= 1.0


def test_breaks_translation_equivariance_once_trained() -> None:
    emb = GridPositionEmbedding(dim=8)
    torch.nn.init.normal_(emb.proj.weight)
    x = torch.randn(1, 1, 4, 6, 8)
    rolled_in = emb(x.roll(1, dims=3))
    assert not torch.allclose(rolled_in, emb(x).roll(1, dims=3))


def test_on_for_sizes_trained_here_off_for_release_sizes() -> None:
    assert get_config("tiny").video_grid_position and get_config("small").video_grid_position
    assert not get_config("iap-5b").video_grid_position and not get_config("ovi-11b").video_grid_position


def test_sample_prediction_turns_the_heads_x0_into_the_velocity() -> None:
    """video_prediction='sample': with the same weights, forward returns (x_sigma - h) / sigma where
    the velocity model returns h; sigma is floored at min_prediction_sigma."""
    import dataclasses

    from facevox.models import DualTowerDiT
    from model_inputs import make_inputs

    base = get_config("debug")
    torch.manual_seed(0)
    as_velocity = DualTowerDiT(base).eval()
    as_sample = DualTowerDiT(dataclasses.replace(base, video_prediction="sample")).eval()
    as_sample.load_state_dict(as_velocity.state_dict())
    video, audio = make_inputs(base, batch=2)
    video = dataclasses.replace(video, timesteps=torch.tensor([0.5, 0.01]))
    with torch.no_grad():
        head = as_velocity(video, audio).video
        out = as_sample(video, audio).video
    sigma = torch.tensor([0.5, base.min_prediction_sigma]).view(2, 1, 1, 1, 1)
    torch.testing.assert_close(out, (video.latents - head) / sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        as_sample(video, audio).audio, as_velocity(video, audio).audio
    )  # audio unchanged
