"""The one trainer loop: accumulation, clipping, EMA, logging, checkpoints, held-out evaluation.

A stage is a :class:`~facevox.training.strategies.Strategy`; the loop does not know which.
Resuming from ``OUT/checkpoints`` restores weights, optimiser, EMA, sampler position and RNG
states, so with ``deterministic=True`` on CPU an interrupted run continues bit-exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from facevox.config import to_dict, write_resolved
from facevox.data.encode import shards_clock
from facevox.data.loader import BucketSampler, LatentBatch, LatentDataset, MixedSampler
from facevox.data.shards import IndexEntry, read_null_caption, read_sample
from facevox.devices import DeviceError, check_device
from facevox.io.atomic import atomic_write_json
from facevox.layout import mean_face_layouts
from facevox.models import DualTowerDiT, get_config
from facevox.models.config import DualTowerConfig
from facevox.models.weights import read_config
from facevox.release.pretrained import (
    PretrainedFolder,
    find_pretrained,
    load_init,
    plan_init,
    pretrained_config,
)
from facevox.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from facevox.training.config import TrainConfig
from facevox.training.metrics import SIGMA_BUCKETS, MetricsWriter, plot_losses
from facevox.training.objective import ObjectiveConfig, StepLoss, flow_loss, sample_generators
from facevox.training.parallel import Dist, init_distributed, parallelize
from facevox.training.strategies import Strategy, get_strategy

log = logging.getLogger(__name__)

VAL_SEED = 1234


class TrainError(RuntimeError):
    """A run that cannot start (bad data, incompatible init weights); the message says why."""


def model_config_for(cfg: TrainConfig, ds: LatentDataset) -> DualTowerConfig:
    """The named size with its channels, text width and (sizes trained here) clock taken from the data
    (never assumed), and ``cfg.video_patch`` when given."""
    found = pretrained_init(cfg)
    base = get_config(cfg.size) if found is None else pretrained_config(found, get_config(cfg.size))
    clock = shards_clock(ds.folder) if base.clock is not None else None
    if clock is not None:
        base = dataclasses.replace(base, clock=clock, rope_time_scale=clock.rope_time_scale)
    s = read_sample(ds.path(0))
    patch: tuple[int, int, int] = (
        (int(cfg.video_patch[0]), int(cfg.video_patch[1]), int(cfg.video_patch[2]))
        if cfg.video_patch
        else base.video.patch
    )
    _, t, h, w = s.video_mean.shape
    if t % patch[0] or h % patch[1] or w % patch[2]:
        raise TrainError(f"video latents {t}x{h}x{w} (t, h, w) are not divisible by the video patch {patch}")
    out = dataclasses.replace(
        base,
        video=dataclasses.replace(base.video, in_channels=int(s.video_mean.shape[0]), patch=patch),
        audio=dataclasses.replace(base.audio, in_channels=int(s.audio_mean.shape[1])),
        text_dim=int(s.caption.shape[1]),
    )
    # positions only, no weights depend on it: the run's choice, else the init model's, else the size's
    mode, margin = cfg.ref_position_mode, base.ref_view_margin
    if cfg.init and found is None:
        init_cfg = read_config(model_dir_of(cfg.init))
        mode, margin = mode or init_cfg.ref_position_mode, init_cfg.ref_view_margin
    if mode is not None:
        out = dataclasses.replace(out, ref_position_mode=mode, ref_view_margin=margin)
        base = dataclasses.replace(base, ref_position_mode=mode, ref_view_margin=margin)
    if out.ref_position_mode == "placed":  # where this data's faces are: generation's default boxes
        clips = [ds.path(i) for i in range(ds.sizes[0])]
        layouts = mean_face_layouts(clips)
        if not layouts:
            raise TrainError(f"ref_position_mode 'placed' needs face boxes in the shards of {ds.folder}")
        out = dataclasses.replace(out, face_layouts=layouts)
        base = dataclasses.replace(base, face_layouts=layouts)
    if found is not None and out != base:
        want = (base.video.in_channels, base.audio.in_channels, base.text_dim, base.video.patch)
        have = (out.video.in_channels, out.audio.in_channels, out.text_dim, out.video.patch)
        raise TrainError(
            f"init={cfg.init} ({found.layout} checkpoint) takes video / audio latent channels, caption width "
            f"and video patch {want}; the shards in {ds.folder} give {have}: encode them with the release's "
            "codecs (Wan2.2 VAE, MMAudio 16 kHz, umT5-XXL; docs/release.md) and keep its video patch"
        )
    return out


def pretrained_init(cfg: TrainConfig) -> PretrainedFolder | None:
    """``init=`` as public weights (the IaP release's ``ckpts/``, an Ovi checkpoint folder); None for a
    facevox run or model folder, or no init."""
    return find_pretrained(cfg.init) if cfg.init else None


def resolve_device(cfg: TrainConfig) -> torch.device:
    """The training device, checked: TrainError for a device this machine does not have, or bf16
    where the device cannot compute it. ``cuda`` under torchrun is ``cuda:LOCAL_RANK``."""
    try:
        dev = check_device(cfg.device, bf16=cfg.bf16, default_index=int(os.environ.get("LOCAL_RANK", "0")))
    except DeviceError as e:
        raise TrainError(str(e)) from e
    if dev.type == "cpu":
        return dev
    torch.cuda.set_device(dev)
    if cfg.deterministic:  # cuBLAS needs a fixed workspace for deterministic algorithms
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return dev


def turn_inputs(mcfg: DualTowerConfig) -> dict[str, Any]:
    """flow_loss keywords that pass the turn spans to a model with a turn embedding (none otherwise)."""
    if not mcfg.turn_embedding or mcfg.clock is None:
        return {}
    return {"clock": mcfg.clock, "video_patch_t": mcfg.video.patch[0]}


def model_dir_of(init: str) -> Path:
    """A previous run folder (its ``release/model``) or a model folder."""
    p = Path(init)
    for cand in (p / "release" / "model", p / "model", p):
        if (cand / "model.safetensors").is_file():
            return cand
    raise TrainError(f"init={init}: no model.safetensors in {p}, {p / 'model'} or {p / 'release' / 'model'}")


def init_codec_fingerprints(init: str) -> dict[str, str] | None:
    """The codecs an init model was trained on, as its run or release recorded them (None: unknown)."""
    p = Path(init)
    for cand in (p / "release" / "pipeline.json", p / "pipeline.json", p.parent / "pipeline.json"):
        if cand.is_file():
            return json.loads(cand.read_text()).get("codec_fingerprints")
    prov = p / "PROVENANCE.json"
    if prov.is_file():
        return json.loads(prov.read_text()).get("codec_fingerprints")
    return None


def check_codecs(cfg: TrainConfig, data: Path) -> None:
    """TrainError when ``init`` was trained on latents of other codecs than the shards in ``data``."""
    enc = data / "encode.json"
    shards = json.loads(enc.read_text()).get("codec_fingerprints") if enc.is_file() else None
    model = init_codec_fingerprints(cfg.init) if cfg.init else None
    if shards is not None and model is not None and shards != model:
        raise TrainError(
            f"init={cfg.init} was trained on latents of codecs {model}, the shards in {data} were encoded "
            f"with {shards}: re-encode with the model's codecs or train from other weights"
        )


def check_joins(data: Path, photos: Path) -> None:
    """TrainError unless the photo shards in ``photos`` can train with the shards in ``data``: the same
    codecs, text encoder and clock (``facevox encode-photos --fps`` the clips' frame rate). What the
    clip folder does not record (shards written before ``encode.json`` held it) is not compared."""
    enc = photos / "encode.json"
    if not enc.is_file():
        raise TrainError(f"photos={photos} has no encode.json: write it with `facevox encode-photos`")
    have = json.loads(enc.read_text())
    want = json.loads((data / "encode.json").read_text()) if (data / "encode.json").is_file() else {}
    for key in ("codec_fingerprints", "text_encoder"):
        if want.get(key) is not None and have.get(key) != want[key]:
            raise TrainError(
                f"photos={photos} cannot train with the shards in {data}: their {key} differ "
                f"({have.get(key)} vs {want[key]}); encode the photos with the clips' codecs and text encoder"
            )
    a, b = shards_clock(data), shards_clock(photos)
    if a is not None and (b is None or not a.same_as(b)):
        raise TrainError(
            f"photos={photos} are on the clock {b.describe() if b else 'unknown'}, the shards in {data} on "
            f"{a.describe()}: encode the photos with --fps {a.fps:g} and the clips' codecs"
        )


def build_model(cfg: TrainConfig, mcfg: DualTowerConfig, device: str | torch.device = "cpu") -> DualTowerDiT:
    if not cfg.init:
        torch.manual_seed(cfg.seed)
        return DualTowerDiT(mcfg)
    found = pretrained_init(cfg)
    if found is not None:  # names and shapes checked on meta, then read straight onto the device
        plan = plan_init(found, mcfg)
        log.info("init=%s: %s", cfg.init, plan.describe())
        return load_init(plan, device=device)
    model = DualTowerDiT.from_pretrained(model_dir_of(cfg.init))
    have = model.config
    if have.clock is not None and mcfg.clock is not None and not have.clock.same_as(mcfg.clock):
        raise TrainError(
            f"init={cfg.init} runs on the clock {have.clock.describe()}, the shards in {cfg.data} on "
            f"{mcfg.clock.describe()}: encode the clips at {have.clock.fps:g} fps with its codecs, or train "
            "from scratch"
        )
    if have.clock is None and mcfg.clock is not None:  # weights saved before the seconds clock
        log.warning(
            "init=%s predates the seconds clock: audio positions move from %.5f to %.5f latent frames per "
            "token (%s)%s",
            cfg.init,
            have.rope_time_scale,
            mcfg.rope_time_scale,
            mcfg.clock.describe(),
            "; turn embedding on (it reuses the identity table: no new weights)"
            if mcfg.turn_embedding
            else "",
        )
        model.config = dataclasses.replace(
            have, clock=mcfg.clock, rope_time_scale=mcfg.rope_time_scale, turn_embedding=mcfg.turn_embedding
        )
    if model.config.ref_position_mode != mcfg.ref_position_mode:
        log.warning(
            "init=%s laid its face references out %r; this run places them %r (ref_position_mode)",
            cfg.init,
            model.config.ref_position_mode,
            mcfg.ref_position_mode,
        )
        model.config = dataclasses.replace(model.config, ref_position_mode=mcfg.ref_position_mode)
    if model.config.face_layouts != mcfg.face_layouts:  # a statistic of the data, not of the weights
        model.config = dataclasses.replace(model.config, face_layouts=mcfg.face_layouts)
    if model.config != mcfg:
        raise TrainError(
            f"init weights {cfg.init} have config {model.config.name} with channels "
            f"{model.config.video.in_channels}/{model.config.audio.in_channels}, text {model.config.text_dim}, "
            f"video patch {model.config.video.patch}; the run needs {mcfg.video.in_channels}/"
            f"{mcfg.audio.in_channels}, text {mcfg.text_dim}, video patch {mcfg.video.patch} (video_patch=)"
        )
    return model


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _bucket_losses(sl: StepLoss) -> dict[str, float]:
    out: dict[str, float] = {}
    for stream, loss, sigma in (("video", sl.video, sl.sigma_video), ("audio", sl.audio, sl.sigma_audio)):
        for lo, hi in zip(SIGMA_BUCKETS[:-1], SIGMA_BUCKETS[1:], strict=True):
            sel = (sigma >= lo) & (sigma < hi) & ~torch.isnan(loss)
            if bool(sel.any()):
                out[f"loss_{stream}_sigma{lo:.2f}"] = float(loss[sel].mean())
    return out


class Validator:
    """Held-out loss on fixed batches with fixed noise, sigmas and no condition dropout."""

    def __init__(
        self,
        cfg: TrainConfig,
        strategy: Strategy,
        null: tuple[torch.Tensor, torch.Tensor],
        *,
        bf16: bool = False,
    ) -> None:
        self.bf16 = bf16
        self.batches: list[LatentBatch] = []
        # both streams of every sample are measured, also for the unimodal stage: comparable across stages
        self.strategy, self.null = dataclasses.replace(strategy, unimodal=False), null
        self.objective = dataclasses.replace(  # every condition whole: no dropout, no reference augmentation
            cfg.objective,
            drop_text=0.0,
            drop_faces=0.0,
            drop_voices=0.0,
            drop_all=0.0,
            dropout="independent",  # the drop_* fields above (and the reference-gain passes) apply
            uniform_fraction=0.0,  # the same sigma law for every run, so runs compare
            ref_view_keep=1.0,
            voice_ref_min_span=1.0,
            face_region_weight=0.0,  # val_video is the plain mean in every run; the face region has its own
        )
        if not cfg.val_split:
            return
        try:
            ds = LatentDataset(cfg.data, splits=[cfg.val_split])
        except Exception as e:  # no held-out samples: validation is off, said once
            log.warning("no validation: %s", e)
            return
        bs = min(cfg.batch_size, len(ds))
        try:
            sampler = BucketSampler(ds.entries, bs, seed=VAL_SEED)
        except Exception as e:
            log.warning("no validation: %s", e)
            return
        n = min(cfg.val_batches, sum(len(b) // bs for b in sampler.buckets))
        self.batches = [ds.batch(next(sampler)) for _ in range(n)]

    def _per_sample(
        self, model: torch.nn.Module, objective: ObjectiveConfig
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample (video, audio, video inside the face boxes) losses, each (N,), NaN where a
        sample has no such value; the same noise and sigmas at every call."""
        lv, la, lf = [], [], []
        device = next(model.parameters()).device
        config = model.config  # the turn spans, for a model that takes them
        turns = turn_inputs(config) if isinstance(config, DualTowerConfig) else {}
        for i, b in enumerate(self.batches):
            gens = sample_generators(VAL_SEED, 0, i, range(b.size))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                sl = flow_loss(model, b.to(device), self.strategy, objective, self.null, gens, **turns)
            lv.append(sl.video.detach())
            la.append(sl.audio.detach())
            lf.append(sl.video_face if sl.video_face is not None else torch.full_like(sl.video, float("nan")))
        return torch.cat(lv), torch.cat(la), torch.cat(lf)

    def sample_losses(
        self, model: torch.nn.Module, objective: ObjectiveConfig
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (video, audio) losses, each (N,) over the fixed batches in order, NaN where a
        sample has no such stream; the same noise and sigmas at every call."""
        v, a, _ = self._per_sample(model, objective)
        return v, a

    def losses(self, model: torch.nn.Module, objective: ObjectiveConfig) -> tuple[float, float]:
        """Mean (video, audio) loss over the fixed batches under ``objective`` (its dropout applied)."""
        v, a = self.sample_losses(model, objective)
        return _nanmean(v), _nanmean(a)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """Held-out losses; with references, also the identity diagnostic ``ref_gain_{video,audio}``:
        the loss without this modality's references minus the loss with them (same noise and sigmas),
        i.e. how much the model uses the identity references of people it never saw. Shards with face
        boxes add ``val_video_face`` and ``ref_gain_video_face``: the same, inside the face boxes,
        unweighted, where a face reference can help."""
        if not self.batches:
            return {}
        was_training = model.training
        model.eval()
        v, a, f = (_nanmean(x) for x in self._per_sample(model, self.objective))
        out = {"val_video": v, "val_audio": a, "val_loss": v + a}
        if not math.isnan(f):  # the shards carry face boxes
            out["val_video_face"] = f
        if self.strategy.references != "none":
            nv, _, nf = (
                _nanmean(x)
                for x in self._per_sample(model, dataclasses.replace(self.objective, drop_faces=1.0))
            )
            _, na = self.losses(model, dataclasses.replace(self.objective, drop_voices=1.0))
            out["ref_gain_video"], out["ref_gain_audio"] = nv - v, na - a
            if not math.isnan(f):
                out["ref_gain_video_face"] = nf - f
        model.train(was_training)
        return out


def _nanmean(x: torch.Tensor) -> float:
    """Mean of the non-NaN entries; NaN when there are none."""
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else float("nan")


def _full(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor from an FSDP2 DTensor shard (a collective: every rank must call it)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t.detach()


def ema_validation(
    validator: Validator,
    model: torch.nn.Module,
    trainable: Mapping[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
) -> dict[str, float]:
    """The validation of the EMA weights (what the release holds) as ``ema_*`` keys; the live
    weights are put back bit-exactly afterwards."""
    live = {n: trainable[n].detach().clone() for n in ema}
    with torch.no_grad():
        for n, v in ema.items():
            trainable[n].copy_(v.to(trainable[n].dtype))
    try:
        val = validator(model)
    finally:
        with torch.no_grad():
            for n, v in live.items():
                trainable[n].copy_(v)
    return as_ema(val)


def as_ema(val: dict[str, float]) -> dict[str, float]:
    """Validation figures under the ``ema_*`` keys that name the EMA (release) weights."""
    return {f"ema_{k}": v for k, v in val.items()}


def export_release(
    out: Path,
    mcfg: DualTowerConfig,
    live: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    data: Path,
    cfg: TrainConfig,
) -> Path:
    """Write ``OUT/release``: the EMA model, and, when the shards name them, codecs + pipeline.json."""
    release = out / "release"
    tmp = out / "release.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with torch.device("meta"):  # no second full-size model in memory: the tensors are assigned
        export = DualTowerDiT(mcfg)
    export.load_state_dict({**live, **ema}, strict=True, assign=True)
    export.save_pretrained(tmp / "model")
    enc = data / "encode.json"
    if enc.is_file():
        info = json.loads(enc.read_text())
        for kind in ("video", "audio"):
            src = Path(info[f"{kind}_codec"])
            if not src.is_dir():
                raise TrainError(f"{enc} names {kind} codec {src}, which does not exist")
            shutil.copytree(src, tmp / f"{kind}_codec")
        pipeline = {
            "format": "facevox.pipeline/1",
            **info["alignment"],
            # sample on the shift the model was trained with (0: the resolution-dependent one)
            "shift": cfg.objective.shift,
            "text_encoder": info.get("text_encoder", "minilm"),
            "codec_fingerprints": info.get("codec_fingerprints"),
            "trained_with": {
                "strategy": cfg.strategy,
                "steps": cfg.steps,
                "data": str(data),
                "init": cfg.init,
            },
        }
        atomic_write_json(tmp / "pipeline.json", pipeline)
    else:
        log.warning("%s has no encode.json: the release holds the model only", data)
    shutil.rmtree(release, ignore_errors=True)
    tmp.rename(release)
    return release


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) one stage; returns the final metrics."""
    if not cfg.data or not cfg.out:
        raise TrainError("train needs data=SHARD_DIR and out=RUN_DIR")
    device = resolve_device(cfg)
    env: Dist = init_distributed(device)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(cfg.deterministic)
    out, data = Path(cfg.out), Path(cfg.data)
    strategy = get_strategy(cfg.strategy)
    ds = LatentDataset(data, splits=[cfg.train_split], extra=[cfg.photos] if cfg.photos else [])
    n_clips = ds.sizes[0]  # the clip windows come first, then the photos
    null = read_null_caption(data)
    mcfg = model_config_for(cfg, ds)
    check_codecs(cfg, data)
    if cfg.photos:
        check_joins(data, Path(cfg.photos))
    model = build_model(cfg, mcfg, device).to(device)
    turns = turn_inputs(mcfg)
    names = strategy.select(model, cfg.stage_params)
    n_train = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    bf16 = cfg.bf16
    model = parallelize(model, dataclasses.replace(cfg.parallel, bf16=bf16), env, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    def bucket_sampler(entries: list[IndexEntry]) -> BucketSampler:
        return BucketSampler(
            entries,
            cfg.batch_size,
            seed=cfg.seed,
            rank=env.rank,
            world=env.world,
            bucket_by_slots=cfg.bucket_by_slots,
        )

    clip_sampler = bucket_sampler(ds.entries[:n_clips])
    sampler: BucketSampler | MixedSampler = clip_sampler
    if cfg.photos:
        sampler = MixedSampler(
            clip_sampler, bucket_sampler(ds.entries[n_clips:]), cfg.photo_share, offset=n_clips, seed=cfg.seed
        )
    trainable = dict(model.named_parameters())
    ema = {n: trainable[n].detach().clone().float() for n in names}

    start = 0
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is not None:
        if env.world > 1:
            raise TrainError("resuming under torchrun is not supported yet: resume with one process")
        state, ema = load_checkpoint(ckpt, model=model, optimizer=opt, param_names=names)
        sampler.load_state_dict(state["sampler"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", ckpt, start)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        write_resolved(cfg, out)
    if env.world > 1:
        log.warning(
            "checkpoints are written by single-process runs only; this run exports its release at the end"
        )
    metrics = MetricsWriter(out, start_step=start, tensorboard=cfg.tensorboard) if env.main else None
    validator = Validator(cfg, strategy, null, bf16=bf16)
    log.info(
        "%s: %s, %.2fM of %.2fM parameters trainable, %d train samples (%d in no full batch), %d val batches",
        strategy.name,
        mcfg.name,
        n_train / 1e6,
        n_all / 1e6,
        len(ds),
        sampler.dropped,
        len(validator.batches),
    )
    if start == 0 and metrics is not None and validator.batches:
        val = validator(model)  # at step 0 the EMA is the live weights
        metrics.write({"step": 0, **val, **as_ema(val)})

    model.train()
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"train {strategy.name}",
        unit="step",
        disable=not (progress and env.main),
    )
    last: dict[str, Any] = {}
    t_last, samples_since = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        losses: list[StepLoss] = []
        for micro in range(cfg.grad_accum):
            batch = ds.batch(next(sampler)).to(device)
            first = env.rank * cfg.batch_size
            gens = sample_generators(cfg.seed, step, micro, range(first, first + batch.size))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                sl = flow_loss(model, batch, strategy, cfg.objective, null, gens, **turns)
            (sl.loss / cfg.grad_accum).backward()
            losses.append(sl)
            samples_since += batch.size * env.world
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        with torch.no_grad():
            for n in names:
                ema[n].lerp_(trainable[n].detach().float(), 1 - cfg.ema_decay)
        done = step + 1
        loss = sum(float(s.loss.detach()) for s in losses) / len(losses)
        if env.world > 1:  # the logged loss is the mean over ranks (streams below are rank 0's)
            t = torch.tensor([loss])
            torch.distributed.all_reduce(t)
            loss = float(t) / env.world
        if not math.isfinite(loss):
            raise TrainError(f"loss is {loss} at step {done}; lower lr (={cfg.lr}) or check the data")
        row: dict[str, Any] = {"step": done, "loss": loss, "lr": lr, "grad_norm": gnorm}
        if done % cfg.log_every == 0 or done == cfg.steps:
            cat = StepLoss(
                *(
                    torch.cat([getattr(s, f.name).reshape(-1) for s in losses])
                    for f in dataclasses.fields(StepLoss)
                )
            )
            row["loss_video"] = float(torch.nanmean(cat.video))
            row["loss_audio"] = float(torch.nanmean(cat.audio))
            row.update(_bucket_losses(cat))
            now = time.perf_counter()
            row["samples_per_s"] = samples_since / max(now - t_last, 1e-9)
            t_last, samples_since = now, 0
            if metrics is not None:
                metrics.write(row)
        if validator.batches and (done % cfg.eval_every == 0 or done == cfg.steps):
            val = {**validator(model), **ema_validation(validator, model, trainable, ema)}
            row.update(val)
            if metrics is not None:
                metrics.write({"step": done, **val})
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.1e}")
        last = row
        if env.world == 1 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(
                out / "checkpoints",
                done,
                model=model,
                ema=ema,
                optimizer=opt,
                param_names=names,
                state={"sampler": sampler.state_dict(), "config": to_dict(cfg)},
                keep=cfg.keep_checkpoints,
            )
    bar.close()
    if metrics is not None:
        metrics.close()
    live = {k: _full(v) for k, v in model.state_dict().items()}
    ema_full = {k: _full(v) for k, v in ema.items()}
    if env.main:
        export_release(out, mcfg, live, ema_full, data, cfg)
        plot_losses({strategy.name: out}, out / "loss_curves.png")
    return last
