"""Fine-tuning from public weights (``facevox train init=``): the IaP release's ``ckpts/`` and an Ovi
checkpoint folder through the generation key maps, fabricated at reduced width; bad folders, devices
and data refused before any weight is read; the full-size mapping and stage split on the meta device;
and (slow) encode with the release's codecs -> one stage-1 step -> release -> generate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from curate_fixtures import have_espeak
from facevox.devices import DeviceError, check_device
from facevox.release import ReleaseError
from facevox.release.pretrained import (
    find_pretrained,
    full_size_report,
    load_init,
    plan_init,
    pretrained_config,
)
from facevox.training.config import TrainConfig
from facevox.training.trainer import TrainError, build_model, train
from finetune_fixtures import make_curated, make_ovi_dir
from latent_fixtures import write_shards
from release_fixtures import E2E_DIMS, write_release_yaml, write_transformer


def _cfg(data: Path, out: Path, init: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), init=str(init), strategy="stage1", size="iap-5b", steps=1)
    base |= dict(batch_size=1, log_every=1, eval_every=10, checkpoint_every=10, warmup=1, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("iap")
    write_release_yaml(root / "configs" / "ovi_fusion_id_5b_av_infer.yaml")
    src = write_transformer(root / "ckpts", dims=E2E_DIMS)
    return root / "ckpts", src


def test_release_and_ovi_folders_map_every_tensor(release, tmp_path: Path) -> None:
    from facevox.models import get_config

    ckpts, src = release
    found = find_pretrained(ckpts)
    assert found is not None and found.layout == "iap" and found.sizes is not None
    cfg = pretrained_config(found, get_config("iap-5b"))
    assert (cfg.video.dim, cfg.depth, cfg.text_dim, cfg.video.ref_params) == (48, 2, 16, "copy")
    plan = plan_init(found, cfg)
    assert plan.fresh == ["identity.table"] and not plan.clones
    assert all("_prime" in k for k in plan.ignored)  # only the release's unused copies are dropped
    model = load_init(plan)
    state = model.state_dict()
    assert {v.dtype for v in state.values()} == {torch.float32}  # master weights
    assert not state["identity.table"].any()  # W^(z) from zero: the release's function at step 0
    for key, name in plan.rename.items():
        torch.testing.assert_close(state[name], src[key], rtol=0, atol=0)

    folder, ovi_src = make_ovi_dir(tmp_path)
    found = find_pretrained(tmp_path)
    assert found is not None and found.layout == "ovi" and found.sizes == folder / "video.json"
    ovi_cfg = pretrained_config(found, get_config("iap-5b"))
    plan = plan_init(found, ovi_cfg)
    assert len(plan.rename) == len(ovi_src) and not plan.ignored and plan.fresh == ["identity.table"]
    state = load_init(plan).state_dict()
    # the reference copies start as the target weights (what the release did from Ovi)
    for key in plan.clones:
        torch.testing.assert_close(state[key], state[key.replace(".ref.", ".")], rtol=0, atol=0)
    assert len(plan.clones) == E2E_DIMS.depth * 15  # q,k,v,o (w, b) + 2 norms + ffn (2 x w, b) + modulation
    assert find_pretrained(ckpts.parent / "configs") is None  # no transformer: not public weights


def test_bad_folders_devices_and_data_are_refused_before_any_weight_is_read(
    release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpts, src = release
    shards = write_shards(tmp_path / "shards", train=2, heldout=0)
    broken = tmp_path / "broken"
    write_release_yaml(broken / "configs" / "ovi_fusion_id_5b_av_infer.yaml")
    (broken / "ckpts" / "IAP").mkdir(parents=True)
    missing = "video_model.blocks.1.ffn.2.weight"
    bad_shape = {k: v for k, v in src.items() if k != missing}
    save_file(bad_shape, str(broken / "ckpts" / "IAP" / "model.safetensors"))
    with pytest.raises(
        ReleaseError, match=r"model keys have no source, e\.g\. \['blocks\.1\.video\.ffn\.fc2"
    ):
        found = find_pretrained(broken / "ckpts")
        assert found is not None
        plan_init(found, pretrained_config(found, None))  # type: ignore[arg-type]
    bad_shape[missing] = torch.zeros(3, 3)
    save_file(bad_shape, str(broken / "ckpts" / "IAP" / "model.safetensors"))
    with pytest.raises(ReleaseError, match=re.escape(f"'{missing}' has shape (3, 3)")):
        plan_init(found, pretrained_config(found, None))  # type: ignore[arg-type]

    def no_read(*a: object, **k: object) -> None:
        raise AssertionError("weights read before the checks")

    monkeypatch.setattr("facevox.training.trainer.load_init", no_read)
    with pytest.raises(ReleaseError, match=re.escape(missing)):  # the trainer's way in
        build_model(_cfg(shards, tmp_path / "run-bad", broken / "ckpts"), pretrained_config(found, None))  # type: ignore[arg-type]
    # shards of other codecs than the checkpoint's (tiny latents vs 48 / 20 channels)
    with pytest.raises(TrainError, match=r"takes video / audio latent channels.*\(48, 20, 16"):
        train(_cfg(shards, tmp_path / "run-data", ckpts), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="no CUDA device"):
            train(_cfg(shards, tmp_path / "run-cuda", ckpts, device="cuda"), progress=False)
    assert not any((tmp_path / f"run-{n}").exists() for n in ("bad", "data", "cuda"))


def test_check_device_names_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_device("cpu", bf16=True) == torch.device("cpu")
    with pytest.raises(DeviceError, match="'tpu:0'|not a device name|cpu or cuda"):
        check_device("tpu:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla V100")
    with pytest.raises(DeviceError, match=r"device=cuda:3: this machine has 1 CUDA device"):
        check_device("cuda:3")
    with pytest.raises(DeviceError, match="Tesla V100 cannot compute bf16"):
        check_device("cuda", bf16=True)
    assert check_device("cuda") == torch.device("cuda", 0)


@pytest.mark.slow  # builds iap-5b on meta twice (about 8 s)
def test_full_size_every_tensor_mapped_and_stage_split() -> None:
    rows = {(r["layout"], r["stage"]): r for r in full_size_report("iap-5b")}
    iap, ovi = rows["iap", "stage1"], rows["ovi", "stage1"]
    assert (iap["mapped"], iap["cloned"], iap["ignored"], iap["fresh"]) == (2523, 0, 1170, ["identity.table"])
    assert (ovi["mapped"], ovi["cloned"], ovi["ignored"]) == (2073, 450, 0)
    assert iap["model_tensors"] == 2524
    n = {s: rows["iap", s]["trainable_params"] for s in ("base", "stage1", "stage2", "stage3")}
    assert n["base"] == iap["all_params"] == 15_437_279_444
    # stage 1: both towers' self-attention + the video reference copy's attention and modulation + W^(z)
    assert n["stage1"] == 3_399_622_656 and n["stage2"] == n["stage3"] == 6_799_405_056


@pytest.mark.slow  # encode with the release's codecs, one stage-1 step from each layout, generate (~1 min)
@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_encode_stage1_release_generate_from_public_weights(tmp_path: Path) -> None:
    from facevox.data.encode import EncodeConfig, encode
    from facevox.data.shards import read_index, read_sample
    from facevox.io.media import read_av
    from facevox.models import DualTowerDiT
    from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person
    from facevox.pipeline.pipeline import GenerateConfig
    from pipeline_fixtures import make_inputs
    from release_fixtures import make_release_dir

    ckpts = make_release_dir(tmp_path / "checkout")
    curated = make_curated(tmp_path / "curated")
    enc = EncodeConfig(
        video_codec=str(ckpts / "Wan2.2-TI2V-5B-Diffusers" / "vae"),
        audio_codec=str(ckpts / "MMAudio" / "facevox"),
        text_encoder=str(ckpts / "umt5-xxl"),
        width=64,
        height=64,
        window_frames=9,
        windows_per_sample=1,
        face_size=32,
        voice_seconds=1.0,
        heldout_fraction=0.0,
        threads=1,
    )
    counts = encode(enc, curated, tmp_path / "shards", progress=False)
    assert counts["windows"] == 2
    s = read_sample(tmp_path / "shards" / read_index(tmp_path / "shards")[0].file)
    assert (s.video_mean.shape[0], s.audio_mean.shape[1], s.caption.shape[1]) == (48, 20, 16)
    assert s.video_mean.shape[1:] == (3, 4, 4)  # 9 frames -> 3 latent frames; 64 / 16

    run = tmp_path / "run"
    train(_cfg(tmp_path / "shards", run, ckpts, val_split=""), progress=False)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in m and m["loss"] > 0 for m in metrics)
    before = load_file(str(ckpts / "Identity-as-Presence" / "IAP" / "a.safetensors"))
    after = DualTowerDiT.from_pretrained(run / "release" / "model").state_dict()
    # frozen by stage 1: the video FFN (release key ffn.0 -> fc1) is still the release's
    torch.testing.assert_close(
        after["blocks.0.video.ffn.fc1.weight"], before["video_model.blocks.0.ffn.0.weight"]
    )
    assert json.loads((run / "release" / "pipeline.json").read_text())["text_encoder"].endswith("umt5-xxl")

    ovi_folder, _ = make_ovi_dir(tmp_path / "ovi")
    train(_cfg(tmp_path / "shards", tmp_path / "run-ovi", ovi_folder, val_split=""), progress=False)
    assert (tmp_path / "run-ovi" / "release" / "model" / "model.safetensors").is_file()

    inputs = make_inputs(tmp_path / "inputs")
    pipe = FacevoxPipeline.load(run / "release")
    alice = Person(name="alice", faces=(str(inputs["alice.png"]),), voice=str(inputs["alice.wav"]))
    req = GenerationRequest(name="c", people=(alice,), script="[alice] Hello there.", seed=1)
    out = pipe(req, tmp_path / "gen", config=GenerateConfig(steps=2))
    clip = read_av(out.video_path)
    assert clip.video.shape[1:] == (64, 64, 3) and clip.audio is not None and clip.sample_rate == 16000
