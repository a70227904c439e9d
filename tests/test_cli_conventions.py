"""One CLI convention (inputs positional, ``--out FOLDER``, ``--recipe``, ``key=value``) across the
verbs; the old spellings give the same call plus a deprecation message; bad combinations are refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from facevox.cli import main


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace each verb's work with a recorder of what it was asked to do."""
    import facevox.codecs.training
    import facevox.curate.pipeline
    import facevox.data.encode
    import facevox.synth.world
    import facevox.training.trainer

    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        facevox.synth.world,
        "generate_world",
        lambda cfg, out: (
            seen.update(synth=(str(out), cfg.seed))
            or {"clips_made_this_run": 0, "wall_seconds": 0.0, "clips_per_second": 0.0}
        ),
    )
    monkeypatch.setattr(
        facevox.curate.pipeline,
        "curate",
        lambda cfg, progress=True: seen.update(curate=(cfg.input_dir, cfg.out_dir, cfg.workers)) or {},
    )
    monkeypatch.setattr(
        facevox.data.encode,
        "encode",
        lambda cfg, curated, out: seen.update(encode=(str(curated), str(out), cfg.windows_per_sample)),
    )
    monkeypatch.setattr(
        facevox.training.trainer, "train", lambda cfg: seen.update(train=(cfg.data, cfg.out, cfg.steps)) or {}
    )
    monkeypatch.setattr(
        facevox.codecs.training,
        "train_codec",
        lambda cfg, data, out: seen.update(codec=(cfg.kind, str(data), str(out), cfg.steps)) or {},
    )
    return seen


NEW_AND_OLD = [
    (
        "synth",
        ["synth", "--out", "W", "seed=3"],
        ["synth", "W", "seed=3"],
        ("W", 3),
    ),
    (
        "curate",
        ["curate", "IN", "--out", "C", "workers=1"],
        ["curate", "IN", "C", "workers=1"],
        ("IN", "C", 1),
    ),
    (
        "encode",
        ["encode", "C", "--out", "S", "windows_per_sample=2"],
        ["encode", "C", "S", "windows_per_sample=2"],
        ("C", "S", 2),
    ),
    (
        "train",
        ["train", "S", "--out", "R", "steps=7"],
        ["train", "data=S", "out=R", "steps=7"],
        ("S", "R", 7),
    ),
    (
        "codec",
        ["train-codec", "video", "W", "--out", "K", "steps=5"],
        ["train-codec", "video", "--data", "W", "--out", "K", "steps=5"],
        ("video", "W", "K", 5),
    ),
]


@pytest.mark.parametrize(("key", "new", "old", "want"), NEW_AND_OLD, ids=[c[0] for c in NEW_AND_OLD])
def test_new_and_old_spellings_make_the_same_call(
    calls: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    key: str,
    new: list[str],
    old: list[str],
    want: tuple,
) -> None:
    with caplog.at_level(logging.WARNING, logger="facevox"):
        assert main(new) == 0
    assert calls.pop(key) == want
    assert "deprecated" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="facevox"):
        assert main(old) == 0
    assert calls.pop(key) == want
    assert "deprecated" in caplog.text


@pytest.mark.parametrize(
    ("key", "argv", "want"),
    [
        ("curate", ["curate", "IN", "workers=1", "--out", "C"], ("IN", "C", 1)),
        ("encode", ["encode", "C", "windows_per_sample=2", "--out", "S"], ("C", "S", 2)),
        ("train", ["train", "S", "steps=7", "--out", "R", "lr=0.5"], ("S", "R", 7)),
        ("codec", ["train-codec", "video", "W", "steps=5", "--out", "K"], ("video", "W", "K", 5)),
    ],
    ids=["curate", "encode", "train", "codec"],
)
def test_overrides_before_the_options_are_kept(
    calls: dict[str, Any], key: str, argv: list[str], want: tuple
) -> None:
    assert main(argv) == 0
    assert calls.pop(key) == want


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "--out", "W", "V"], "give the output folder once"),
        (["synth"], "--out FOLDER is required"),
        (["encode", "C"], "--out FOLDER is required"),
        (["train", "S", "out=R", "--out", "R2"], "once each"),
        (["train", "S"], "--out RUN is required"),
        (["train-codec", "audio", "--out", "K"], "data folder is required"),
        (["train-codec", "audio", "W", "--data", "W2", "--out", "K"], "give the data folder once"),
    ],
)
def test_bad_combinations_are_refused_before_any_work(
    calls: dict[str, Any], caplog: pytest.LogCaptureFixture, argv: list[str], message: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="facevox"):
        assert main(argv) == 2
    assert message in caplog.text
    assert not calls  # nothing ran


def test_every_verb_writing_a_folder_documents_out(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in (
        ["synth"],
        ["curate"],
        ["encode"],
        ["train"],
        ["train-codec", "video"],
        ["demo"],
        ["generate"],
    ):
        with pytest.raises(SystemExit):
            main([*verb, "--help"])
        assert "--out" in capsys.readouterr().out, verb


def test_generate_model_tells_a_pipeline_folder_from_a_release(tmp_path: Path) -> None:
    from facevox.pipeline import FacevoxPipeline, RequestError
    from facevox.release.loader import ReleaseError

    with pytest.raises(RequestError, match="does not exist"):
        FacevoxPipeline.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError):  # no pipeline.json: read as a release ckpts/ folder, which it is not
        FacevoxPipeline.load(tmp_path / "empty")
