"""The flow path: interpolation, velocity, shifts, timestep sampling."""

import pytest
import torch

from facevox.diffusion.path import (
    TimestepSampling,
    inference_sigmas,
    interpolate,
    predicted_clean,
    resolution_shift,
    shift_sigma,
    velocity,
)


def test_path_endpoints_and_velocity_is_the_derivative():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    assert torch.equal(interpolate(x0, noise, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, noise, torch.ones(3)), noise)
    s, h = torch.full((3,), 0.3), 1e-3
    fd = (interpolate(x0, noise, s + h) - interpolate(x0, noise, s - h)) / (2 * h)
    torch.testing.assert_close(fd, velocity(x0, noise), atol=1e-3, rtol=1e-3)
    xs = interpolate(x0, noise, s)
    torch.testing.assert_close(predicted_clean(xs, velocity(x0, noise), s), x0, atol=1e-5, rtol=1e-5)


def test_euler_on_the_exact_velocity_reaches_the_data():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    x, sig = noise.clone(), inference_sigmas(7, shift=3.0)
    for a, b in zip(sig[:-1], sig[1:], strict=True):
        x = x + (b - a) * velocity(x0, noise)  # straight path: Euler is exact
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=1e-5)


def test_shift_is_monotone_and_moves_mass_to_noise():
    s = torch.linspace(0, 1, 101)
    out = shift_sigma(s, 3.0)
    assert out[0] == 0 and out[-1] == 1 and bool((out.diff() > 0).all())
    assert bool((out[1:-1] > s[1:-1]).all())
    assert torch.equal(shift_sigma(s, 1.0), s)
    with pytest.raises(ValueError, match="shift"):
        shift_sigma(s, 0.0)
    assert resolution_shift(256) == 1.0 and resolution_shift(4096) == 3.0 and resolution_shift(10**6) == 3.0
    assert 1.0 < resolution_shift(2000) < 3.0


def test_timestep_sampling_is_seeded_bounded_and_shifted():
    ts = TimestepSampling(shift=3.0)
    a = ts.sample(4096, generator=torch.Generator().manual_seed(0))
    b = ts.sample(4096, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and float(a.min()) >= 1e-3 and float(a.max()) <= 1.0
    plain = TimestepSampling().sample(4096, generator=torch.Generator().manual_seed(0))
    assert 0.45 < float(plain.median()) < 0.55  # logit-normal(0, 1) has median 0.5
    assert float(a.median()) > 0.7  # shift 3 sends the median to 0.75
    with pytest.raises(ValueError):
        TimestepSampling(logit_std=0)
