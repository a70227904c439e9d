"""The trainer: golden losses per stage, bit-exact resume after kill -9, held-out loss falls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facevox.data.shards import read_null_caption
from facevox.models import DualTowerDiT, get_config
from facevox.training.config import TrainConfig
from facevox.training.metrics import read_metrics
from facevox.training.strategies import get_strategy
from facevox.training.trainer import TrainError, Validator, train
from latent_fixtures import write_shards

# First 20 training losses per stage (debug size, fixture seed 0, each stage from the previous one),
# generated once from this code; any change to the objective, sampler or model must update them.
GOLDEN = json.loads(
    '{"base": [3.720987, 3.559282, 3.182397, 3.081575, 3.696338, 3.859191, 3.448342, 3.547003, 3.513089, 2.76505, 3.445082, 3.104823, 3.09702, 3.122283, 3.007377, 3.322833, 3.074098, 2.879557, 3.34005, 2.648258], "stage1": [1.850941, 2.200785, 3.297528, 1.828907, 2.620866, 4.253008, 1.866266, 4.313519, 4.045404, 3.43212, 2.934915, 1.160343, 3.058988, 2.785317, 1.800004, 1.381406, 3.174023, 1.287469, 3.07478, 2.642683], "stage2": [3.300481, 3.184447, 2.947126, 3.153107, 3.514423, 3.445344, 3.433572, 3.537813, 3.396664, 2.758951, 3.549057, 3.186448, 3.163239, 3.086045, 3.058311, 3.307054, 3.016803, 2.940447, 3.375386, 2.779416], "stage3": [3.190905, 3.059352, 2.927399, 3.107792, 3.515065, 3.52939, 3.488334, 3.451869, 3.346295, 2.709876, 3.506968, 3.133418, 3.115349, 3.051291, 3.004035, 3.247687, 3.014042, 3.015447, 3.337239, 2.768024]}'
)


def _cfg(data: Path, out: Path, strategy: str, init: str = "", **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        init=init,
        strategy=strategy,
        size="debug",
        steps=20,
        batch_size=2,
        log_every=1,
        eval_every=20,
        checkpoint_every=20,
        warmup=2,
        lr=3e-3,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("shards"))


def test_golden_first_20_losses_per_stage(shards: Path, tmp_path: Path) -> None:
    prev = ""
    for stage in ("base", "stage1", "stage2", "stage3"):
        train(_cfg(shards, tmp_path / stage, stage, prev), progress=False)
        got = [r["loss"] for r in read_metrics(tmp_path / stage) if "loss" in r]
        torch.testing.assert_close(torch.tensor(got), torch.tensor(GOLDEN[stage]), rtol=1e-4, atol=1e-5)
        assert (tmp_path / stage / "release" / "model" / "model.safetensors").is_file()
        gains = [r for r in read_metrics(tmp_path / stage) if "ref_gain_video" in r]
        assert (len(gains) == 2) == (stage != "base")  # step 0 and the end, for stages with references
        assert (tmp_path / stage / "loss_curves.png").stat().st_size > 1000
        prev = str(tmp_path / stage)


def test_heldout_loss_falls_below_step_zero(shards: Path, tmp_path: Path) -> None:
    train(_cfg(shards, tmp_path, "base", steps=60, eval_every=60, log_every=10), progress=False)
    rows = [r for r in read_metrics(tmp_path) if "val_loss" in r]
    val = [r["val_loss"] for r in rows]
    assert len(val) == 2 and val[1] < 0.92 * val[0], val  # measured: 3.85 -> 3.34
    # ema_*: the validation of the EMA weights, i.e. of the exported release model
    assert rows[0]["ema_val_loss"] == rows[0]["val_loss"]  # step 0: the EMA is the live weights
    cfg = _cfg(shards, tmp_path, "base", steps=60)
    release = DualTowerDiT.from_pretrained(tmp_path / "release" / "model")
    got = Validator(cfg, get_strategy("base"), read_null_caption(shards))(release)
    assert got["val_loss"] == pytest.approx(rows[1]["ema_val_loss"], rel=1e-5)
    assert rows[1]["ema_val_loss"] != rows[1]["val_loss"]


def test_kill_9_then_resume_is_bit_exact(shards: Path, tmp_path: Path) -> None:
    kw = dict(steps=30, checkpoint_every=5, eval_every=30)
    train(_cfg(shards, tmp_path / "straight", "base", **kw), progress=False)
    out = tmp_path / "killed"
    args = [
        f"{k}={v}"
        for k, v in {**_cfg(shards, out, "base", **kw).__dict__}.items()
        if k not in ("objective", "parallel", "betas")
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facevox.cli", "--log-level", "WARNING", "train", *args, "threads=1"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step-0000010" / "state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "release").exists()
    train(_cfg(shards, out, "base", **kw), progress=False)
    a = [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "straight") if "loss" in r]
    b = [(r["step"], r["loss"]) for r in read_metrics(out) if "loss" in r]
    assert a == b  # bit-exact: same floats, same steps, no duplicated lines


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(shards: Path, tmp_path: Path) -> None:
    """torchrun, 2 CPU processes with FSDP2 over gloo, 1 sample each == 1 process with 2 samples."""
    kw = dict(steps=6, batch_size=2, checkpoint_every=100, eval_every=100, val_split="")
    train(_cfg(shards, tmp_path / "one", "base", **kw), progress=False)
    out = tmp_path / "two"
    args = [
        f"{k}={v}"
        for k, v in _cfg(shards, out, "base", **{**kw, "batch_size": 1}).__dict__.items()
        if k not in ("objective", "parallel", "betas")
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            "-m",
            "facevox.cli",
            "--log-level",
            "WARNING",
            "train",
            *args,
            "threads=1",
        ],
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    a = [r["loss"] for r in read_metrics(tmp_path / "one") if "loss" in r]
    b = [r["loss"] for r in read_metrics(out) if "loss" in r]
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=2e-4, atol=1e-5)
    assert (out / "release" / "model" / "model.safetensors").is_file()


def test_init_must_fit_the_data(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="no model.safetensors"):
        train(_cfg(shards, tmp_path / "x", "stage1", init=str(tmp_path / "nothing")), progress=False)
    with pytest.raises(ValueError, match="unknown training strategy"):
        train(_cfg(shards, tmp_path / "y", "stage9"), progress=False)


def test_video_patch_is_taken_from_the_run_and_must_fit(shards: Path, tmp_path: Path) -> None:
    # fixture latents are (C, T, H, W) = (4, 2, 4, 4): a (1, 4, 4) patch gives one token per frame
    train(_cfg(shards, tmp_path / "b", "base", steps=2, video_patch=(1, 4, 4)), progress=False)
    model = DualTowerDiT.from_pretrained(tmp_path / "b" / "release" / "model")
    assert model.config.video.patch == (1, 4, 4)
    with pytest.raises(TrainError, match="video patch"):  # the next stage must name the same patch
        train(_cfg(shards, tmp_path / "s", "stage1", init=str(tmp_path / "b"), steps=2), progress=False)
    train(
        _cfg(shards, tmp_path / "s", "stage1", init=str(tmp_path / "b"), steps=2, video_patch=(1, 4, 4)),
        progress=False,
    )
    with pytest.raises(TrainError, match="not divisible"):
        train(_cfg(shards, tmp_path / "x", "base", steps=2, video_patch=(1, 3, 3)), progress=False)


def test_init_trained_on_other_codecs_is_refused(shards: Path, tmp_path: Path) -> None:
    """Shards of one codec cannot train a model made on another's latents (checked, not mixed)."""
    import shutil

    data = tmp_path / "shards"
    shutil.copytree(shards, data)
    fp = {"video": "a" * 16, "audio": "b" * 16}
    (data / "encode.json").write_text(json.dumps({"codec_fingerprints": fp}))
    model = tmp_path / "model"
    DualTowerDiT(get_config("debug")).save_pretrained(model)
    (model / "PROVENANCE.json").write_text(json.dumps({"codec_fingerprints": {**fp, "video": "c" * 16}}))
    with pytest.raises(TrainError, match="trained on latents of codecs.*re-encode"):
        train(_cfg(data, tmp_path / "s", "stage1", init=str(model), steps=1), progress=False)
