"""Fine-tuning starts: a ``DualTowerDiT`` from the Identity-as-Presence release's ``ckpts/`` or from an
Ovi checkpoint folder, through the key maps generation uses (:mod:`facevox.models.keymaps`).

``facevox train init=FOLDER`` accepts, besides a facevox run or model folder:

- **the IaP release** (``layout="iap"``): found by content as :func:`facevox.release.loader.find_parts`
  finds it (a safetensors file holding ``video_model.blocks.0.self_attn.q_prime.weight``); the sizes
  come from the release's inference YAML when the checkout has one, else from the run's ``size``;
- **an Ovi checkpoint** (``layout="ovi"``): safetensors files with ``video_model.*`` / ``audio_model.*``
  keys and no ``*_prime`` copies (``ckpts/Ovi/model.safetensors``). The sizes come from Ovi's
  ``video.json`` + ``audio.json`` when they lie beside the checkpoint (or in ``configs/model/dit``
  above it), else from the run's ``size``. The reference copies of ``ref_params="copy"`` start as
  clones of the target weights (what the release did when it began from Ovi).

Every name and shape is checked on the meta device first (:func:`plan_init`); a missing, extra or
mis-shaped tensor is a :class:`~facevox.release.loader.ReleaseError` naming it, before any weight is
read. :func:`load_init` then reads only the used tensors, one at a time, straight onto the device in
the requested dtype, and fills the model keys no public checkpoint holds by fixed rules
(:data:`FRESH_INIT`): the identity table starts at **zero** (step 0 computes the pretrained model's
function), LoRA adapters as :class:`facevox.nn.lora.LoRA` starts them (``up`` zero).

``python -m facevox.release.pretrained --size iap-5b`` checks both layouts at full size on the meta
device against the committed manifests and prints the trainable parameters of every stage.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open

from facevox.models import DualTowerConfig, DualTowerDiT
from facevox.models.keymaps import KEYMAPS, convert_state_dict
from facevox.release.loader import (
    MARKER_KEY,
    ReleaseError,
    config_from_yaml,
    find_parts,
    unsupported_tower_settings,
)

log = logging.getLogger(__name__)

Layout = Literal["iap", "ovi"]


def _zeros(t: torch.Tensor, cfg: DualTowerConfig) -> None:
    torch.nn.init.zeros_(t)


def _lora_down(t: torch.Tensor, cfg: DualTowerConfig) -> None:
    torch.nn.init.kaiming_uniform_(t, a=5**0.5)


def _normal(t: torch.Tensor, cfg: DualTowerConfig) -> None:
    torch.nn.init.normal_(t, std=cfg.init_std)


# model keys no public checkpoint holds -> how they start (full-match patterns, first match wins)
FRESH_INIT: tuple[tuple[str, Callable[[torch.Tensor, DualTowerConfig], None]], ...] = (
    (r"identity\.table", _zeros),  # W^(z) from zero: the pretrained function at step 0
    (r"identity\.to_audio\.weight", _normal),
    (r".+\.ref\.(q|k|v|o)\.up\.weight", _zeros),  # LoRA: a no-op at the start
    (r".+\.ref\.(q|k|v|o)\.down\.weight", _lora_down),
)


@dataclass(frozen=True)
class PretrainedFolder:
    """A folder of public weights that :func:`load_init` can start a run from."""

    layout: Layout
    files: tuple[Path, ...]  # the transformer's safetensors files
    sizes: Path | None  # the file the tower sizes come from (release YAML, Ovi's video.json), if any


@dataclass(frozen=True)
class InitPlan:
    """What :func:`load_init` will do, decided on the meta device (no weight read)."""

    folder: PretrainedFolder
    config: DualTowerConfig
    rename: dict[str, str]  # checkpoint key -> model key, the tensors that are read
    owner: dict[str, Path]  # checkpoint key -> its file
    clones: list[str]  # model keys that start as a copy of another model key
    fresh: list[str]  # model keys set by FRESH_INIT
    ignored: list[str]  # checkpoint keys the map drops (the release's unused copies)

    def describe(self) -> str:
        return (
            f"{self.folder.layout} checkpoint ({len(self.folder.files)} file(s)): {len(self.rename)} tensors "
            f"mapped, {len(self.ignored)} ignored, {len(self.clones)} cloned, fresh {self.fresh}"
        )


def _keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as fh:
        return list(fh.keys())


def find_pretrained(folder: str | Path) -> PretrainedFolder | None:
    """The public-weights folder at ``folder``, or None when it holds no Ovi-family transformer (a
    facevox run or model folder, say). Only safetensors headers are read."""
    root = Path(folder)
    if not root.is_dir():
        return None
    if (root / "model.safetensors").is_file() and not _keys_start(root / "model.safetensors"):
        return None  # a facevox model folder
    tower_files = [p for p in sorted(root.rglob("*.safetensors")) if _keys_start(p)]
    if not tower_files:
        return None
    if any(MARKER_KEY in _keys(p) for p in tower_files):
        parts = find_parts(root)
        return PretrainedFolder("iap", parts.transformer, parts.release_yaml)
    if any("_prime" in k for p in tower_files for k in _keys(p)):
        raise ReleaseError(
            f"{root}: the checkpoint has *_prime reference copies but not {MARKER_KEY!r}: neither the "
            "Identity-as-Presence release nor Ovi"
        )
    return PretrainedFolder("ovi", tuple(tower_files), _ovi_sizes(root, tower_files))


def _keys_start(path: Path) -> bool:
    return any(k.startswith(("video_model.", "audio_model.")) for k in _keys(path))


def _ovi_sizes(root: Path, files: list[Path]) -> Path | None:
    """``video.json`` (with ``audio.json`` beside it) next to the checkpoint, in ``root`` or in a
    ``configs/model/dit`` folder of ``root`` or one of its parents (Ovi's repository layout)."""
    places = [files[0].parent, root, *(p / "configs" / "model" / "dit" for p in (root, *root.parents[:3]))]
    for where in places:
        if (where / "video.json").is_file() and (where / "audio.json").is_file():
            return where / "video.json"
    return None


def ovi_config(video_json: Path, base: DualTowerConfig) -> DualTowerConfig:
    """``base`` (its reference parameterisation and positions) at the sizes of Ovi's tower JSONs."""
    try:
        v = json.loads(video_json.read_text())
        a = json.loads((video_json.parent / "audio.json").read_text())
        problems = unsupported_tower_settings(
            (("video", v, [1, 2, 2]), ("audio", a, [1])), ("qk_norm", "cross_attn_norm")
        )
        if problems:
            raise ReleaseError(f"{video_json.parent}: unsupported Ovi settings: {', '.join(problems)}")
        return replace(
            base,
            name=f"{base.name}@ovi",
            video=replace(
                base.video, in_channels=v["in_dim"], dim=v["dim"], heads=v["num_heads"], ffn_dim=v["ffn_dim"]
            ),
            audio=replace(
                base.audio, in_channels=a["in_dim"], dim=a["dim"], heads=a["num_heads"], ffn_dim=a["ffn_dim"]
            ),
            depth=v["num_layers"],
            text_dim=int(v.get("text_dim", 4096)),
            freq_dim=int(v.get("freq_dim", base.freq_dim)),
            rope_time_scale=float(a.get("temporal_rope_scaling_factor", base.rope_time_scale)),
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        if isinstance(e, ReleaseError):
            raise
        raise ReleaseError(f"{video_json}: bad Ovi tower config ({e})") from e


def pretrained_config(found: PretrainedFolder, base: DualTowerConfig) -> DualTowerConfig:
    """The sizes the folder declares (release YAML, Ovi JSONs), else ``base``."""
    if found.sizes is None:
        return base
    return config_from_yaml(found.sizes) if found.layout == "iap" else ovi_config(found.sizes, base)


def plan_init(found: PretrainedFolder, config: DualTowerConfig) -> InitPlan:
    """Every checkpoint name and shape against ``config`` built on meta; ReleaseError names the first
    missing, extra, duplicate or mis-shaped tensor. No weight is read."""
    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, Path] = {}
    for path in found.files:
        with safe_open(str(path), framework="pt") as fh:
            for k in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
                if k in owner:
                    raise ReleaseError(f"{k!r} appears in both {owner[k]} and {path}")
                shapes[k], owner[k] = tuple(fh.get_slice(k).get_shape()), path
    rename, clones, fresh, ignored = map_shapes(shapes, config, found.layout, found.files[0].parent)
    return InitPlan(found, config, rename, owner, clones, fresh, ignored)


def map_shapes(
    shapes: dict[str, tuple[int, ...]], config: DualTowerConfig, layout: str, where: str | Path
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """(checkpoint key -> model key, cloned model keys, fresh model keys, ignored checkpoint keys) of a
    key -> shape table mapped onto ``config`` built on meta; ReleaseError names the first misfit."""
    with torch.device("meta"):
        model = DualTowerDiT(config)
    target = {k: v.shape for k, v in model.state_dict().items()}
    source = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    try:
        mapped, fresh = convert_state_dict(source, KEYMAPS[layout], target)
    except ValueError as err:
        raise ReleaseError(f"{where}: {err}") from err
    no_rule = [k for k in fresh if not any(re.fullmatch(p, k) for p, _ in FRESH_INIT)]
    if no_rule:
        raise ReleaseError(f"{where}: model keys with neither a source nor a start rule: {no_rule[:5]}")
    by_id = {id(v): k for k, v in source.items()}
    rename = {by_id[id(v)]: k for k, v in mapped.items() if id(v) in by_id}
    clones = sorted(set(mapped) - set(rename.values()))
    return rename, clones, sorted(fresh), sorted(set(shapes) - set(rename))


def load_init(
    plan: InitPlan, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DualTowerDiT:
    """The planned model, read tensor by tensor onto ``device`` in ``dtype`` (fp32: training's master
    weights) and loaded with ``strict=True, assign=True``; peak memory is the finished model."""
    source: dict[str, torch.Tensor] = {}
    for path in plan.folder.files:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            for k in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
                if k in plan.rename:
                    source[k] = fh.get_tensor(k).to(dtype)
    with torch.device("meta"):
        model = DualTowerDiT(plan.config)
    own = model.state_dict()
    mapped, fresh = convert_state_dict(
        source, KEYMAPS[plan.folder.layout], {k: v.shape for k, v in own.items()}
    )
    for key in fresh:
        t = torch.empty(own[key].shape, dtype=dtype, device=device)
        rule = next(fn for p, fn in FRESH_INIT if re.fullmatch(p, key))
        rule(t, plan.config)
        mapped[key] = t
    model.load_state_dict(mapped, strict=True, assign=True)
    log.info("init from %s", plan.describe())
    return model


# ------------------------------------------------------------------ the full-size check (meta device)
def full_size_report(size: str = "iap-5b") -> list[dict[str, Any]]:
    """Both public layouts onto ``size`` from the committed manifests (meta device), and what each
    training stage trains: one row per (layout, stage)."""
    from facevox.models import get_config
    from facevox.models.manifests import load_manifest
    from facevox.training.strategies import STRATEGIES

    cfg = get_config(size)
    with torch.device("meta"):
        model = DualTowerDiT(cfg)
    n_all = sum(p.numel() for p in model.parameters())
    rows: list[dict[str, Any]] = []
    for layout in ("iap", "ovi"):
        manifest = load_manifest(layout)
        rename, clones, fresh, ignored = map_shapes(manifest, cfg, layout, f"{layout}.json")
        for name, strategy in STRATEGIES.items():
            names = set(strategy.select(model))
            rows.append(
                {
                    "layout": layout,
                    "checkpoint_tensors": len(manifest),
                    "checkpoint_params": sum(math.prod(v) for v in manifest.values()),
                    "model_tensors": len(model.state_dict()),
                    "mapped": len(rename),
                    "cloned": len(clones),
                    "ignored": len(ignored),
                    "fresh": fresh,
                    "stage": name,
                    "trainable_tensors": len(names),
                    "trainable_params": sum(p.numel() for k, p in model.named_parameters() if k in names),
                    "all_params": n_all,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m facevox.release.pretrained [--size iap-5b]``: both public layouts mapped onto the
    size at full width on the meta device, and the trainable parameters of every stage."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--size", default="iap-5b")
    a = p.parse_args(argv)
    rows = full_size_report(a.size)
    for layout in ("iap", "ovi"):
        r = next(r for r in rows if r["layout"] == layout)
        print(
            f"{layout}: {r['checkpoint_tensors']:,} checkpoint tensors ({r['checkpoint_params'] / 1e9:.2f} B "
            f"parameters), {r['ignored']:,} ignored -> {a.size}'s {r['model_tensors']:,} tensors: "
            f"{r['mapped']:,} mapped + {r['cloned']:,} cloned + fresh {r['fresh']}"
        )
    print(f"\n{'stage':<8}{'trainable tensors':>19}{'trainable params':>20}{'of all':>9}")
    for r in rows:
        if r["layout"] == "iap":
            share = r["trainable_params"] / r["all_params"]
            print(f"{r['stage']:<8}{r['trainable_tensors']:>19,}{r['trainable_params']:>20,}{share:>9.1%}")


if __name__ == "__main__":
    main()
