"""Solvers against an analytic velocity field; guidance algebra."""

import pytest
import torch

from facevox.diffusion.guidance import Guidance, GuidanceScales, combine
from facevox.diffusion.samplers import SamplerConfig, sample

MU, S = 1.5, 0.4  # data ~ N(MU, S^2): the flow maps noise n exactly to MU + S * n


def exact_velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[noise - x0 | x_sigma] for Gaussian data, x_sigma = (1 - sigma) x0 + sigma n."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
    var = (1 - s) ** 2 * S**2 + s**2
    r = x - (1 - s) * MU
    e_x0 = MU + (1 - s) * S**2 / var * r
    e_n = s / var * r
    return e_n - e_x0


def _fn(xv, xa, sv, sa):
    return exact_velocity(xv, sv), exact_velocity(xa, sa)


@pytest.mark.parametrize("steps", [12, 24])
def test_unipc_beats_euler_on_an_analytic_flow(steps: int) -> None:
    g = torch.Generator().manual_seed(0)
    nv, na = torch.randn(4, 3, 2, 2, 2, generator=g), torch.randn(4, 5, 3, generator=g)
    errs = {}
    for solver in ("euler", "unipc"):
        xv, xa = sample(_fn, nv.clone(), na.clone(), SamplerConfig(solver=solver, steps=steps, shift=1.0))
        errs[solver] = float((xv - (MU + S * nv)).abs().max()), float((xa - (MU + S * na)).abs().max())
    # measured (max abs error): 12 steps euler 0.175 / unipc 0.0011; 24 steps 0.090 / 0.0088
    assert max(errs["unipc"]) < 0.25 * max(errs["euler"]), errs
    assert max(errs["unipc"]) < 0.02, errs


def test_euler_converges_with_steps_and_sampling_is_deterministic() -> None:
    n = torch.randn(2, 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    a = torch.zeros(2, 3, 2)
    e8 = (sample(_fn, n, a, SamplerConfig(solver="euler", steps=8))[0] - (MU + S * n)).abs().max()
    e64 = (sample(_fn, n, a, SamplerConfig(solver="euler", steps=64))[0] - (MU + S * n)).abs().max()
    assert e64 < e8 / 4
    x1 = sample(_fn, n, a, SamplerConfig(steps=5))
    x2 = sample(_fn, n, a, SamplerConfig(steps=5))
    assert torch.equal(x1[0], x2[0]) and torch.equal(x1[1], x2[1])


def test_guidance_algebra() -> None:
    g = torch.Generator().manual_seed(2)
    p = {k: torch.randn(3, generator=g) for k in ("none", "text", "text+faces", "all")}
    assert GuidanceScales().needed == ("all",)
    assert torch.equal(combine(p, GuidanceScales()), p["all"])
    s = GuidanceScales(text=3.0, faces=2.0, voices=1.5)
    want = (
        p["none"]
        + 3 * (p["text"] - p["none"])
        + 2 * (p["text+faces"] - p["text"])
        + 1.5 * (p["all"] - p["text+faces"])
    )
    torch.testing.assert_close(combine(p, s), want)
    only_text = GuidanceScales(text=4.0)
    assert only_text.needed == ("none", "text", "all")
    torch.testing.assert_close(
        combine(p, only_text), p["none"] + 4 * (p["text"] - p["none"]) + (p["all"] - p["text"])
    )
    only_voice = GuidanceScales(voices=2.0)
    torch.testing.assert_close(combine(p, only_voice), p["text+faces"] + 2 * (p["all"] - p["text+faces"]))
    both = Guidance(video=GuidanceScales(faces=2.0), audio=GuidanceScales(voices=2.0))
    assert both.variants == ("text", "text+faces", "all")


@pytest.mark.parametrize("solver", ["euler", "unipc"])
def test_each_stream_follows_its_own_shifted_grid(solver: str) -> None:
    from facevox.diffusion.path import inference_sigmas

    seen: list[tuple[float, float]] = []

    def fn(xv, xa, sv, sa):
        seen.append((float(sv[0]), float(sa[0])))
        return _fn(xv, xa, sv, sa)

    g = torch.Generator().manual_seed(1)
    nv, na = torch.randn(2, 3, 2, 2, 2, generator=g), torch.randn(2, 5, 3, generator=g)
    xv, xa = sample(fn, nv, na, SamplerConfig(solver=solver, steps=10, shift=3.0, audio_shift=1.0))
    sv, sa = zip(*seen, strict=True)
    tol = 1e-5 if solver == "euler" else 2e-3  # diffusers builds its flow grid its own way
    assert sv == pytest.approx(inference_sigmas(10, shift=3.0)[:-1].tolist(), abs=tol)
    assert sa == pytest.approx(inference_sigmas(10, shift=1.0)[:-1].tolist(), abs=tol)
    # the streams are independent here: each matches a run with its shift for both streams
    v3, _ = sample(_fn, nv, na, SamplerConfig(solver=solver, steps=10, shift=3.0))
    _, a1 = sample(_fn, nv, na, SamplerConfig(solver=solver, steps=10, shift=1.0))
    torch.testing.assert_close(xv, v3)
    torch.testing.assert_close(xa, a1)
    assert not torch.allclose(xa, sample(_fn, nv, na, SamplerConfig(solver=solver, steps=10, shift=3.0))[1])
