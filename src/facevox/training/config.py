"""Typed configuration of ``facevox train`` (defaults < ``--recipe`` YAML < ``key=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from facevox.training.objective import ObjectiveConfig


@dataclass(frozen=True, kw_only=True)
class ParallelConfig:
    activation_checkpointing: bool = False  # recompute block activations in backward
    compile: bool = False  # torch.compile each block
    fsdp: bool = True  # shard with FSDP2 (fully_shard) when launched by torchrun with > 1 process
    bf16: bool = False  # old spelling of TrainConfig.dtype=bfloat16 (kept: recipes may set it)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    data: str = ""  # shard folder written by `facevox encode`
    out: str = ""  # run folder (created, or resumed from its newest checkpoint)
    # a photo shard folder (`facevox encode-photos`): one-frame, silent samples of many more people that
    # join the clip windows (joint image training); photo_share of the batches come from it
    photos: str = ""
    photo_share: float = 0.5
    init: str = ""  # previous stage's run folder (its release/model) or a model folder; "" = random init
    strategy: str = "base"  # base | stage1 | stage2 | stage3 (see training/strategies.py)
    # what a stage trains: "paper" (its attention, reference and identity weights; FFNs frozen), "video"
    # (that and the whole video tower) or "all" (every parameter): for a base trained from scratch
    stage_params: Literal["paper", "video", "all"] = "paper"
    size: str = "tiny"  # model size from facevox.models.registry
    # latent cells per video token (t, h, w); None = the size's. A video codec with half the spatial
    # stride keeps the size's token count with twice the patch, e.g. [1, 4, 4] for the x4 tiny codec
    video_patch: tuple[int, int, int] | None = None
    # where the face references sit in position space (models.config.DualTowerConfig.ref_position_mode);
    # None = the size's (or the init model's). "placed" spreads each face over its box in the target
    ref_position_mode: Literal["after", "before", "placed"] | None = None
    steps: int = 200  # optimiser steps to reach
    batch_size: int = 4  # samples per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    lr: float = 3e-4
    warmup: int = 20  # linear warm-up steps, then cosine to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.99  # per optimiser step; the release weights are the EMA
    seed: int = 0
    deterministic: bool = True  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    threads: int = 2  # torch intra-op threads
    # where the model trains: "cpu", "cuda" (under torchrun: cuda:LOCAL_RANK) or "cuda:N"
    device: str = "cpu"
    # compute precision: "float32", or "bfloat16" = bf16 autocast over fp32 master weights, fp32
    # optimiser state and EMA (with FSDP2: a bf16 param / fp32 reduce mixed-precision policy)
    dtype: Literal["float32", "bfloat16"] = "float32"
    train_split: str = "train"
    val_split: str = "heldout"  # people never seen in training; "" = no validation
    val_batches: int = 4  # fixed validation batches (same noise and sigmas at every evaluation)
    log_every: int = 5
    eval_every: int = 50
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    bucket_by_slots: bool = False
    tensorboard: bool = False  # also write TensorBoard events (needs the tensorboard package)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)

    def __post_init__(self) -> None:
        if self.video_patch is not None and (len(self.video_patch) != 3 or min(self.video_patch) < 1):
            raise ValueError(f"video_patch must be three positive integers (t, h, w), got {self.video_patch}")
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("steps, batch_size and grad_accum must be >= 1")
        if self.photos and not 0 < self.photo_share < 1:
            raise ValueError(f"photo_share must be in (0, 1), got {self.photo_share}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def bf16(self) -> bool:
        """bf16 compute: ``dtype=bfloat16`` or its old spelling ``parallel.bf16``."""
        return self.dtype == "bfloat16" or self.parallel.bf16
