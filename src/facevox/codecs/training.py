"""``facevox train-codec``: train a tiny video or audio codec, resumably.

Training state (model, optimizer, sampler RNG, step) is one safetensors file written atomically
every ``checkpoint_every`` steps; rerunning with the same out folder continues from it. When done
(``steps`` reached or the ``time_budget_min`` spent) the latent statistics are measured on training
samples and the codec is written with ``save_pretrained`` into the out folder, beside the resolved
config (``config.yaml``) and per-step metrics (``metrics.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from facevox.codecs.audio import OobleckAudioCodec, tiny_oobleck_config
from facevox.codecs.base import LatentStats
from facevox.codecs.data import MediaBank, face_boxes, list_clips
from facevox.codecs.loading import load_video_codec
from facevox.codecs.losses import gaussian_kl, multires_stft_loss
from facevox.codecs.mel import MelAudioCodec, MelCodecConfig
from facevox.codecs.patch_pca import PatchCodecConfig, PatchPCAVideoCodec
from facevox.codecs.video import WanVideoCodec, tiny_wan_config
from facevox.config import to_dict
from facevox.io.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"


@dataclass(frozen=True, kw_only=True)
class VideoCodecConfig:
    # "pca": closed-form linear patch code + conv refiner decoder (facevox.codecs.patch_pca; the
    # tiny default, fitted in minutes); "wan": the Wan causal conv VAE (AutoencoderKLWan)
    arch: Literal["wan", "pca"] = "wan"
    base_dim: int = 16  # Wan VAE base width
    z_dim: int = 8  # latent channels (both arches)
    # width multiples per level: 4 levels = x8 space (Wan's layout), 3 levels = x4 space
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 1  # residual blocks per level
    # training clip length (1 + 4k); 5-frame training never exercises the causal cache across chunks
    # and then degrades on 17-frame clips (18.5 dB at 5 frames vs 13.9 dB at 17, codec_bench)
    frames: int = 9
    size: int = 64  # training crop size (pixels, square)
    short_side: int = 72  # clips are resized to this short side before cropping
    l2_weight: float = 1.0  # MSE term beside the L1 term
    # single frames per step beside the clips, at ``image_size``: the causal VAE codes frame 0 (and
    # every face reference, a one-frame latent) on its own path, which clip losses weight 1/frames
    image_batch: int = 0
    image_size: int = 64
    # share of clip and image crops centred on a face (a world's ground-truth boxes): identity is in
    # the face, which random crops rarely frame whole
    face_crop_fraction: float = 0.0
    # ---- arch "pca" only
    fit_batches: int = 16  # batches of clips whose patches the closed-form fit reads
    refiner_width: int = 32  # conv width of the decoder's refiner (0: linear decode only)
    latent_scaling: str = "shared"  # "shared" | "channel" (PatchCodecConfig.latent_scaling)
    # the refiner learns on latents with Gaussian noise of std drawn uniformly in [0, latent_noise]
    # times each channel's std, for half the samples: generated latents are never exact
    latent_noise: float = 0.5
    # and, for the same samples, offsets constant over latent_block x latent_block cells (std drawn in
    # [0, latent_block_noise] x each channel's std): a DiT's errors are per token (2x2 cells for the
    # tiny sizes), which a refiner trained on white noise alone renders as 16-px seams
    latent_block_noise: float = 0.0
    latent_block: int = 2


@dataclass(frozen=True, kw_only=True)
class AudioCodecConfig:
    # "mel": log-mel VAE + Griffin-Lim (trains in CPU minutes); "oobleck": diffusers waveform VAE
    # (needs far more steps than a CPU budget gives; see benchmarks/codec_bench.py figures)
    arch: Literal["oobleck", "mel"] = "mel"
    mel_width: int = 128  # conv width of the mel VAE
    hidden: int = 32  # Oobleck decoder base width
    latent_channels: int = 16  # latent channels (encoder width is twice this)
    downsampling_ratios: tuple[int, ...] = (2, 4, 8, 10)  # hop = product (640 = 25 latents/s)
    channel_multiples: tuple[int, ...] = (1, 2, 4, 8)
    sample_rate: int = 16_000
    segment_samples: int = 10_240  # training segment length (a multiple of the hop)
    stft_weight: float = 1.0  # multi-resolution STFT term
    l1_weight: float = 1.0  # waveform L1 term


@dataclass(frozen=True, kw_only=True)
class TrainCodecConfig:
    kind: Literal["video", "audio"] = "video"
    # codec folder to start from (fine-tuning; same architecture, loaded strictly); "" = random weights
    init: str = ""
    # "all" | "decoder": the encoder frozen at init's weights with init's latent statistics, so the
    # latents (and shards and models trained on them) stay valid while the reconstruction improves
    trainable: Literal["all", "decoder"] = "all"
    steps: int = 2000  # optimiser steps to reach
    time_budget_min: float = 18.0  # stop (and finish) after this much training wall time in one run
    batch_size: int = 4
    lr: float = 5e-4
    kl_weight: float = 1e-4  # weight of the mean per-element KL
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    log_every: int = 10
    stats_batches: int = 8  # batches used to measure the latent mean/std at the end
    max_clips: int | None = None  # read at most this many clips (None: all)
    threads: int = 2  # torch intra-op threads
    seed: int = 0
    video: VideoCodecConfig = field(default_factory=VideoCodecConfig)
    audio: AudioCodecConfig = field(default_factory=AudioCodecConfig)

    def __post_init__(self) -> None:
        if self.trainable not in ("all", "decoder"):
            raise ValueError(f"trainable must be 'all' or 'decoder', got {self.trainable!r}")
        if self.trainable == "decoder" and not self.init:
            raise ValueError("trainable=decoder fine-tunes a trained codec: give init=CODEC_DIR")


AnyCodec = WanVideoCodec | PatchPCAVideoCodec | OobleckAudioCodec | MelAudioCodec


def trained_module(codec: AnyCodec) -> torch.nn.Module:
    """The module whose weights a run trains and checkpoints (the VAE, or the patch codec itself)."""
    return codec if isinstance(codec, PatchPCAVideoCodec) else codec.vae


def build_codec(cfg: TrainCodecConfig) -> AnyCodec:
    """The codec to train: random weights of the configured architecture, or ``cfg.init``'s weights
    and latent statistics.

    With ``init`` the configured architecture must match the folder's exactly (strict load; a
    mismatch names the first differing key or shape).
    """
    codec = _fresh_codec(cfg)
    if cfg.init:
        start = type(codec).from_pretrained(cfg.init)
        ours, theirs = trained_module(codec).state_dict(), trained_module(start).state_dict()
        bad = sorted(set(ours) ^ set(theirs)) or [k for k in ours if ours[k].shape != theirs[k].shape]
        if bad:
            raise ValueError(
                f"init={cfg.init} does not match the configured {cfg.kind} codec: {bad[0]} (and {len(bad) - 1} more)"
            )
        trained_module(codec).load_state_dict(theirs, strict=True)
        codec.set_stats(start.stats)
        log.info("starting from the %s codec in %s", cfg.kind, cfg.init)
    return codec


def _fresh_codec(cfg: TrainCodecConfig) -> AnyCodec:
    if cfg.kind == "video" and cfg.video.arch == "pca":
        v = cfg.video
        return PatchPCAVideoCodec(
            PatchCodecConfig(
                latent_channels=v.z_dim, refiner_width=v.refiner_width, latent_scaling=v.latent_scaling
            )
        )
    if cfg.kind == "video":
        v = cfg.video
        return WanVideoCodec.from_config(
            tiny_wan_config(v.base_dim, v.z_dim, tuple(v.dim_mult), v.num_res_blocks)
        )
    a = cfg.audio
    if a.arch == "mel":
        return MelAudioCodec(
            MelCodecConfig(sample_rate=a.sample_rate, width=a.mel_width, latent_channels=a.latent_channels)
        )
    if a.segment_samples % int(torch.tensor(a.downsampling_ratios).prod()):
        raise ValueError(f"audio.segment_samples={a.segment_samples} is not a multiple of the hop")
    return OobleckAudioCodec.from_config(
        tiny_oobleck_config(
            a.hidden,
            a.latent_channels,
            tuple(a.downsampling_ratios),
            tuple(a.channel_multiples),
            a.sample_rate,
        )
    )


DECODER_PREFIXES = ("decoder.", "post_quant_conv.")  # the decoding half of every codec VAE here


def trainable_parameters(cfg: TrainCodecConfig, model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` per ``cfg.trainable`` and return the parameters to optimise. A patch
    codec's encoder is closed form: only its decoder's refiner has parameters."""
    if isinstance(model, PatchPCAVideoCodec):
        if model.refiner is None:
            return []
        return list(model.refiner.requires_grad_(True).parameters())
    if cfg.trainable == "all":
        return list(model.requires_grad_(True).parameters())
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(DECODER_PREFIXES))
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError(f"no decoder parameters ({', '.join(DECODER_PREFIXES)}) in {type(model).__name__}")
    return params


def sample_batch(cfg: TrainCodecConfig, bank: MediaBank, gen: torch.Generator) -> torch.Tensor:
    if cfg.kind == "video":
        v = cfg.video
        return bank.video_batch(cfg.batch_size, v.frames, v.size, gen, v.face_crop_fraction)
    return bank.audio_batch(cfg.batch_size, cfg.audio.segment_samples, gen)


def image_batch(cfg: TrainCodecConfig, bank: MediaBank, gen: torch.Generator) -> torch.Tensor | None:
    """``video.image_batch`` single frames (B, 3, 1, S, S), or None when the run trains on clips only."""
    v = cfg.video
    if cfg.kind != "video" or not v.image_batch:
        return None
    return bank.video_batch(v.image_batch, 1, v.image_size, gen, v.face_crop_fraction)


def _pixel_losses(recon: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute and mean squared pixel error."""
    return (recon - x).abs().mean(), (recon - x).pow(2).mean()


def codec_loss(
    cfg: TrainCodecConfig,
    codec: AnyCodec,
    x: torch.Tensor,
    gen: torch.Generator,
    images: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for one batch, through a sampled latent (the VAE objective).

    ``images``: single frames for the video codec's image term (``video.image_batch``)."""
    if isinstance(codec, PatchPCAVideoCodec):
        return _patch_codec_loss(cfg, codec, x, gen)
    if isinstance(codec, MelAudioCodec):
        mel = codec.log_mel(x)  # (B, M, F)
        post = codec.vae.encode(mel)
        l1 = (codec.vae.decode(post.sample(gen)) - mel).abs().mean()
        kl = gaussian_kl(post)
        total = l1 + cfg.kl_weight * kl
        return total, {"mel_l1": l1.item(), "kl": kl.item(), "loss": total.item()}
    post = codec.raw_posterior(x)
    z = post.sample(gen)
    recon = codec.vae.decode(z).sample
    kl = gaussian_kl(post)
    if cfg.kind == "video":
        l1, l2 = _pixel_losses(recon, x)
        total = l1 + cfg.video.l2_weight * l2 + cfg.kl_weight * kl
        parts = {"l1": l1.item(), "l2": l2.item(), "kl": kl.item()}
    else:
        recon = recon[..., : x.shape[-1]]
        l1 = (recon - x).abs().mean()
        stft = multires_stft_loss(recon, x)
        total = cfg.audio.l1_weight * l1 + cfg.audio.stft_weight * stft + cfg.kl_weight * kl
        parts = {"l1": l1.item(), "stft": stft.item(), "kl": kl.item()}
    if cfg.kind == "video" and cfg.video.image_batch:
        if images is None:
            raise ValueError("video.image_batch > 0 needs the image batch")
        post = codec.raw_posterior(images)
        img_l1, img_l2 = _pixel_losses(codec.vae.decode(post.sample(gen)).sample, images)
        img = img_l1 + cfg.video.l2_weight * img_l2
        total = total + img + cfg.kl_weight * gaussian_kl(post)
        parts["image"] = img.item()
    parts["loss"] = total.item()
    return total, parts


def perturb_latents(z: torch.Tensor, v: VideoCodecConfig, gen: torch.Generator) -> torch.Tensor:
    """Latents (B, C, t, h, w) as a generator might make them, for half the samples: white noise of
    std in [0, latent_noise] and token-block offsets of std in [0, latent_block_noise], each times
    the channel's std (the perturbation follows each channel's energy); the other half unchanged."""
    B = z.shape[0]
    level = torch.rand(B, generator=gen) * v.latent_noise
    perturbed = torch.rand(B, generator=gen) < 0.5
    level = torch.where(perturbed, level, torch.zeros_like(level))
    scale = z.std(dim=(0, 2, 3, 4), keepdim=True)
    z = z + level.view(B, 1, 1, 1, 1) * scale * torch.randn(z.shape, generator=gen)
    if v.latent_block_noise > 0:  # drawn only when on, so runs without it keep their draws
        k = v.latent_block
        C, t, h, w = z.shape[1:]
        blocks = torch.randn((B, C, t, -(-h // k), -(-w // k)), generator=gen)
        blocks = blocks.repeat_interleave(k, dim=3).repeat_interleave(k, dim=4)[..., :h, :w]
        block_level = torch.rand(B, generator=gen) * v.latent_block_noise * perturbed
        z = z + block_level.view(B, 1, 1, 1, 1) * scale * blocks
    return z


def _patch_codec_loss(
    cfg: TrainCodecConfig, codec: PatchPCAVideoCodec, x: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """The refiner's loss: decode latents, perturbed for half the samples, back to the clean pixels."""
    z = perturb_latents(codec.encode(x).mean, cfg.video, gen)
    l1, l2 = _pixel_losses(codec.decode_with_grad(z), x)
    total = l1 + cfg.video.l2_weight * l2
    return total, {"l1": l1.item(), "l2": l2.item(), "loss": total.item()}


@torch.no_grad()
def fit_patch_codec(
    cfg: TrainCodecConfig, codec: PatchPCAVideoCodec, bank: MediaBank, gen: torch.Generator
) -> dict[str, float]:
    """Closed-form fit of the patch basis, then the latent statistics, on training crops."""
    v = cfg.video
    batches = (
        bank.video_batch(cfg.batch_size, v.frames, v.size, gen, v.face_crop_fraction)
        for _ in range(v.fit_batches)
    )
    info = codec.fit(batches)
    stats = measure_stats(cfg, codec, bank, gen)
    codec.set_stats(stats.shared() if codec.config.latent_scaling == "shared" else stats)
    log.info(
        "patch codec fitted on %d patches: %.4f of the variance kept",
        info["patches"],
        info["explained_variance"],
    )
    return info


# ---- resumable training state (safetensors; optimizer structure in the metadata)
def save_state(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, step: int
) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, state in opt_state["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{idx}.{name}"] = t.detach().contiguous()
    tensors["rng.sampler"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": str(step), "param_groups": json.dumps(opt_state["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    gen.set_state(tensors["rng.sampler"])
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"])


@torch.no_grad()
def measure_stats(
    cfg: TrainCodecConfig, codec: AnyCodec, bank: MediaBank, gen: torch.Generator
) -> LatentStats:
    means = [codec.raw_posterior(sample_batch(cfg, bank, gen)).mean for _ in range(cfg.stats_batches)]
    return LatentStats.measure(torch.cat(means))


def train_codec(cfg: TrainCodecConfig, data: str | Path, out: str | Path) -> Path:
    """Train (or resume) a tiny codec on the clips of ``data``; returns the out folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    import yaml

    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    torch.manual_seed(cfg.seed)
    codec = build_codec(cfg)
    model = trained_module(codec).train()
    params = trainable_parameters(cfg, model)
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    resumed = (out / CHECKPOINT).is_file()
    if resumed:
        step = load_state(out / CHECKPOINT, model, opt, gen)
        log.info("resuming from step %d", step)
    paths = list_clips(data)
    bank = MediaBank.load(
        paths,
        want_video=cfg.kind == "video",
        want_audio=cfg.kind == "audio",
        sample_rate=cfg.audio.sample_rate,
        short_side=cfg.video.short_side,
        max_clips=cfg.max_clips,
        boxes=face_boxes(data, paths) if cfg.kind == "video" and cfg.video.face_crop_fraction else None,
    )
    patch_codec = isinstance(codec, PatchPCAVideoCodec)
    if isinstance(codec, PatchPCAVideoCodec) and not resumed and not cfg.init:
        fit = fit_patch_codec(cfg, codec, bank, gen)
        atomic_write_text(out / "fit.json", json.dumps(fit))
        save_state(out / CHECKPOINT, model, opt, gen, step)  # the fit (and its stats, below) survive a kill
        atomic_write_text(
            out / "latent_stats.json", json.dumps({"mean": codec.stats.mean, "std": codec.stats.std})
        )
    elif isinstance(codec, PatchPCAVideoCodec) and resumed and not cfg.init:
        saved = json.loads((out / "latent_stats.json").read_text())
        codec.set_stats(LatentStats(mean=tuple(saved["mean"]), std=tuple(saved["std"])))
    if not params:
        cfg = dataclasses.replace(cfg, steps=step)  # nothing to train (a linear decoder)
    start = time.monotonic()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train-codec {cfg.kind}", unit="step")
    with (out / "metrics.jsonl").open("a") as metrics:
        while step < cfg.steps:
            x = sample_batch(cfg, bank, gen)
            loss, parts = codec_loss(cfg, codec, x, gen, image_batch(cfg, bank, gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix({k: f"{v:.4f}" for k, v in parts.items()})
                metrics.write(json.dumps({"step": step, **parts}) + "\n")
                metrics.flush()
            if step % cfg.checkpoint_every == 0:
                save_state(out / CHECKPOINT, model, opt, gen, step)
            if (time.monotonic() - start) / 60 > cfg.time_budget_min:
                log.info("time budget of %.1f min spent at step %d", cfg.time_budget_min, step)
                break
    bar.close()
    save_state(out / CHECKPOINT, model, opt, gen, step)
    model.eval().requires_grad_(False)
    if cfg.trainable != "decoder" and not patch_codec:  # a frozen encoder keeps init's latents and stats
        codec.set_stats(measure_stats(cfg, codec, bank, gen))
    codec.save_pretrained(out)
    log.info("wrote %s codec (step %d) to %s", cfg.kind, step, out)
    return out


def load_trained(folder: str | Path) -> AnyCodec:
    """Load a codec written by :func:`train_codec` (its kind is read from config.yaml)."""
    import yaml

    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    if not cfg_path.is_file():
        raise ValueError(f"{folder} has no config.yaml from train-codec")
    saved: Any = yaml.safe_load(cfg_path.read_text())
    if saved.get("kind") == "video":
        return load_video_codec(folder)
    if saved.get("audio", {}).get("arch") == "mel":
        return MelAudioCodec.from_pretrained(folder)
    return OobleckAudioCodec.from_pretrained(folder)
