"""Write the committed manifests of MMAudio's 16 kHz audio codec checkpoints (names and shapes only).

Derived by arithmetic from the published configurations (hkchengrex/MMAudio
``mmaudio/ext/autoencoder/vae.py`` ``VAE_16k`` and ``mmaudio/ext/bigvgan/bigvgan_vocoder.yml``), not
from facevox's modules, so that the tests mapping the modules onto them can fail:

- ``mmaudio_vae_16k``: ``v1-16.pth``: mel statistics ``data_mean`` / ``data_std`` (1, 80, 1); an
  encoder and a decoder of bias-free convolutions (``weight`` (out, in, k)), width 384 x (1, 2, 4),
  2 residual blocks per level (3 in the decoder), a x2 time resampler after encoder level 0 (before
  decoder level 0), a middle (block, single-head attention, block), 2 x 20 posterior channels out of
  the encoder, and a scalar ``learnable_gain`` on each output convolution.
- ``bigvgan_16k``: ``best_netG.pt``'s ``generator``: weight-normalised convolutions (bias, gain
  ``original0`` (C_dim0, 1, 1), direction ``original1``), 6 upsamplers (rates 4 4 2 2 2 2, kernels
  8 8 4 4 4 4) from width 1536, 3 AMP blocks per stage (kernels 3 7 11, dilations 1 3 5), each with 6
  anti-aliased SnakeBeta activations (``alpha``, ``beta`` per channel, two 12-tap filter buffers).

Run ``python -m facevox.models.manifests.describe_codecs`` to rewrite the JSON files.
"""

from __future__ import annotations

from facevox.models.manifests import write_manifests

Shapes = dict[str, tuple[int, ...]]


def mmaudio_vae(
    mels: int = 80, latent: int = 20, width: int = 384, mult: tuple[int, ...] = (1, 2, 4), blocks: int = 2
) -> Shapes:
    """The 16 kHz VAE's state dict (down level 0, attention only in the middle)."""
    s: Shapes = {"data_mean": (1, mels, 1), "data_std": (1, mels, 1)}

    def res(p: str, c_in: int, c_out: int) -> None:
        s[f"{p}.conv1.weight"] = (c_out, c_in, 3)
        s[f"{p}.conv2.weight"] = (c_out, c_out, 3)
        if c_in != c_out:
            s[f"{p}.nin_shortcut.weight"] = (c_out, c_in, 1)

    def mid(p: str, c: int) -> None:
        res(f"{p}.block_1", c, c)
        s[f"{p}.attn_1.qkv.weight"] = (3 * c, c, 1)
        s[f"{p}.attn_1.proj_out.weight"] = (c, c, 1)
        res(f"{p}.block_2", c, c)

    s["encoder.conv_in.weight"] = (width, mels, 3)
    c = width
    for lvl, m in enumerate(mult):
        for j in range(blocks):
            res(f"encoder.down.{lvl}.block.{j}", c if j == 0 else width * m, width * m)
        c = width * m
        if lvl == 0:
            s[f"encoder.down.{lvl}.downsample.conv1.weight"] = (c, c, 1)
            s[f"encoder.down.{lvl}.downsample.conv2.weight"] = (c, c, 1)
    mid("encoder.mid", c)
    s["encoder.conv_out.weight"] = (2 * latent, c, 3)
    s["encoder.learnable_gain"] = ()
    s["decoder.conv_in.weight"] = (c, latent, 3)
    mid("decoder.mid", c)
    for lvl in reversed(range(len(mult))):
        for j in range(blocks + 1):
            res(f"decoder.up.{lvl}.block.{j}", c if j == 0 else width * mult[lvl], width * mult[lvl])
        c = width * mult[lvl]
        if lvl == 1:
            s[f"decoder.up.{lvl}.upsample.conv.weight"] = (c, c, 3)
    s["decoder.conv_out.weight"] = (mels, c, 3)
    s["decoder.learnable_gain"] = ()
    return s


def bigvgan(
    mels: int = 80,
    width: int = 1536,
    rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2),
    kernels: tuple[int, ...] = (8, 8, 4, 4, 4, 4),
    res_kernels: tuple[int, ...] = (3, 7, 11),
    units: int = 3,
) -> Shapes:
    """The 16 kHz BigVGAN generator's state dict (AMPBlock1, SnakeBeta)."""
    s: Shapes = {}

    def wn(p: str, c_out: int, c_in: int, k: int, transposed: bool = False) -> None:
        s[f"{p}.bias"] = (c_out,)
        s[f"{p}.parametrizations.weight.original0"] = (c_in if transposed else c_out, 1, 1)
        s[f"{p}.parametrizations.weight.original1"] = (c_in, c_out, k) if transposed else (c_out, c_in, k)

    def act(p: str, c: int) -> None:
        s[f"{p}.act.alpha"] = (c,)
        s[f"{p}.act.beta"] = (c,)
        s[f"{p}.upsample.filter"] = (1, 1, 12)
        s[f"{p}.downsample.lowpass.filter"] = (1, 1, 12)

    wn("conv_pre", width, mels, 7)
    c = width
    for i, k in enumerate(kernels):
        wn(f"ups.{i}.0", c // 2, c, k, transposed=True)
        c //= 2
        for j, rk in enumerate(res_kernels):
            b = f"resblocks.{i * len(res_kernels) + j}"
            for u in range(units):
                wn(f"{b}.convs1.{u}", c, c, rk)
                wn(f"{b}.convs2.{u}", c, c, rk)
            for a in range(2 * units):
                act(f"{b}.activations.{a}", c)
    assert len(rates) == len(kernels)
    act("activation_post", c)
    wn("conv_post", 1, c, 7)
    return s


SOURCES = {
    "mmaudio_vae_16k": "hkchengrex/MMAudio ext_weights/v1-16.pth (VAE_16k), from the published architecture",
    "bigvgan_16k": "hkchengrex/MMAudio ext_weights/best_netG.pt ['generator'] (bigvgan_vocoder.yml), "
    "from the published architecture",
}


def describe_codec(name: str) -> Shapes:
    if name == "mmaudio_vae_16k":
        return mmaudio_vae()
    if name == "bigvgan_16k":
        return bigvgan()
    raise ValueError(f"no description for {name!r}")


def main() -> None:
    """Rewrite this module's manifests next to it."""
    write_manifests(describe_codec, SOURCES)


if __name__ == "__main__":
    main()
