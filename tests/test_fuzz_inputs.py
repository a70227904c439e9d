"""Property-based fuzzing of every text input a user types (issue: reliability at volume, item 1).

Scripts, structured captions, request files, ``key=value`` overrides and web-page submissions, made
by hypothesis (derandomised: every run draws the same examples): each is either accepted, with a
result that obeys the input's rules, or refused with the project's own error (RequestError /
ConfigError) whose message is not empty, never another exception, and a refused submission leaves no
file behind. The quick variants run in the default suite; the ``volume`` variants (2,500 examples
each, 12,500 in all) carry the slow marker. Figures: ``docs/reliability.md``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facevox.config import ConfigError, load
from facevox.pipeline.pipeline import GenerateConfig
from facevox.pipeline.request import (
    GenerationRequest,
    Person,
    RequestError,
    read_requests,
    structured_caption,
)
from facevox.training.config import TrainConfig

SIZES = [
    pytest.param(150, id="quick"),
    pytest.param(2500, marks=[pytest.mark.slow, pytest.mark.timeout(3600)], id="volume"),
]


def run(strategy: st.SearchStrategy[Any], check: Callable[[Any], None], examples: int) -> None:
    """Check ``examples`` draws of ``strategy`` (the same draws on every run)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(x: Any) -> None:
        check(x)

    prop()


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> tuple[Person, ...]:
    d = tmp_path_factory.mktemp("people")
    out = []
    for name in ("alice", "bob", "carol"):
        (d / f"{name}.png").write_bytes(b"x")
        (d / f"{name}.wav").write_bytes(b"x")
        out.append(Person(name=name, faces=(str(d / f"{name}.png"),), voice=str(d / f"{name}.wav")))
    return tuple(out)


def _refused(err: Exception) -> None:
    assert str(err).strip(), f"{type(err).__name__} without a message"


def _check_turns(turns: list[dict[str, Any]], n: int, duration: float) -> None:
    for t in turns:
        assert 0 <= t["slot"] < n and isinstance(t["text"], str)
        assert 0 <= t["start"] < t["end"] <= duration + 0.02 + 1e-9, t


# ---- scripts: the [name] form, timed tags, the release's tagged form, garbage
_NUM = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: f"{x}"),
    st.integers(-3, 9).map(str),
    st.sampled_from(["0.5", "1e9", "-0", ".", "0..1", "nan"]),
)
_PIECE = st.one_of(
    st.sampled_from(["alice", "bob", "carol", "dave", "", " "]).map(lambda n: f"[{n}]"),
    st.tuples(st.sampled_from(["alice", "bob", "x"]), _NUM, _NUM).map(lambda t: f"[{t[0]} {t[1]}-{t[2]}]"),
    st.sampled_from(
        ["<S>", "<E>", "<S1>", "<E1>", "<S2>", "<E2>", "<S4>", "<REF_1_S>", "<REF_1_E>", "<REF_3_S>"]
    ),
    st.sampled_from(["[", "]", "-", "hello there", "Audio: speech", "\n", "\x00", "é ü 中"]),
    st.text(max_size=12),
)
SCRIPTS = st.lists(_PIECE, max_size=8).map(" ".join)


@pytest.mark.parametrize("examples", SIZES)
def test_scripts(people: tuple[Person, ...], examples: int) -> None:
    def check(x: tuple[str, int, float]) -> None:
        script, n, duration = x
        try:
            req = GenerationRequest(name="r", people=people[:n], script=script, duration=duration)
            _, turns = structured_caption(req)
        except RequestError as e:
            _refused(e)
            return
        assert math.isfinite(duration) and duration > 0
        _check_turns(turns, n, duration)

    durations = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.0, 2.0, 0.0, -1.0])
    )
    run(st.tuples(SCRIPTS, st.integers(1, 3), durations), check, examples)


# ---- structured captions (dicts, as a JSON file or the API gives them)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_TURN = st.fixed_dictionaries(
    {},
    optional={
        "slot": st.one_of(st.integers(-1, 4), _JSON),
        "start": st.one_of(st.floats(-1, 3), _JSON),
        "end": st.one_of(st.floats(-1, 3), _JSON),
        "text": st.one_of(st.text(max_size=10), _JSON),
    },
)
CAPTIONS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "scene": _JSON,
            "subjects": st.one_of(st.lists(_JSON, max_size=4), _JSON),
            "speech": st.one_of(st.lists(_TURN, max_size=4), _JSON),
        },
    ),
    st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
)


@pytest.mark.parametrize("examples", SIZES)
def test_structured_captions(people: tuple[Person, ...], examples: int) -> None:
    def check(x: tuple[dict[str, Any], int]) -> None:
        caption, n = x
        try:
            _, turns = structured_caption(GenerationRequest(name="r", people=people[:n], script=caption))
        except RequestError as e:
            _refused(e)
            return
        _check_turns(turns, n, 1.0)

    run(st.tuples(CAPTIONS, st.integers(1, 3)), check, examples)


# ---- request files (requests.jsonl)
@pytest.mark.parametrize("examples", SIZES)
def test_request_files(people: tuple[Person, ...], tmp_path: Path, examples: int) -> None:
    p = people[0]
    good = {"name": p.name, "faces": list(p.faces), "voice": p.voice}
    line = st.one_of(
        _JSON.map(json.dumps),
        st.fixed_dictionaries(
            {"name": st.one_of(st.text(max_size=6), _JSON), "script": st.one_of(SCRIPTS, _JSON)},
            optional={
                "people": st.one_of(st.lists(st.one_of(st.just(good), _JSON), max_size=3), _JSON),
                "duration": st.one_of(st.floats(), _JSON),
                "seed": st.one_of(st.integers(), _JSON),
                "width": _JSON,
                "use_faces": _JSON,
            },
        ).map(json.dumps),
        st.text(max_size=20),
    )
    path = tmp_path / "requests.jsonl"

    def check(lines: list[str]) -> None:
        path.write_text("\n".join(lines))
        try:
            reqs = read_requests(path)
        except RequestError as e:
            _refused(e)
            return
        for r in reqs:
            assert isinstance(r, GenerationRequest) and r.duration > 0

    run(st.lists(line, max_size=3), check, examples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.jsonl"]  # nothing else written


# ---- key=value overrides
_KEYS = st.one_of(
    st.sampled_from(
        ["steps", "lr", "batch_size", "objective.shift", "objective.dropout", "betas", "init", "size"]
    ),
    st.sampled_from(["solver", "video.faces", "audio.text", "shift", "use_cache"]),
    st.text(max_size=10),
)
_VALUES = st.one_of(
    st.sampled_from(
        ["1", "0", "-3", "1e-3", "nan", "inf", "true", "none", "[1, 2]", "[", "{a: 1}", "", "unipc"]
    ),
    st.text(max_size=10),
)
OVERRIDES = st.lists(st.tuples(_KEYS, _VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4)


@pytest.mark.parametrize("examples", SIZES)
@pytest.mark.parametrize("cls", [TrainConfig, GenerateConfig], ids=["train", "generate"])
def test_overrides(cls: type, examples: int) -> None:
    def check(overrides: list[str]) -> None:
        try:
            load(cls, overrides=overrides)
        except ConfigError as e:
            _refused(e)

    run(OVERRIDES, check, examples // 2)


# ---- web-page submissions
@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    from facevox.pipeline import FacevoxPipeline
    from facevox.serve.jobs import JobRunner
    from pipeline_fixtures import make_pipeline_dir

    pipe = FacevoxPipeline.load(make_pipeline_dir(tmp_path_factory.mktemp("pipe")))
    return JobRunner(pipe, tmp_path_factory.mktemp("work"), max_waiting=10_000)


_UPLOAD = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "filename": st.one_of(
                st.sampled_from(["a.png", "../../etc/passwd", "x/../../y.wav", ".", ""]), _JSON
            ),
            "data": st.one_of(st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode()), _JSON),
        },
    ),
    _JSON,
)
_PERSON = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(["alice", "bob", "a b", "../x", ""]), _JSON),
            "faces": st.one_of(st.lists(_UPLOAD, max_size=2), _JSON),
            "voice": _UPLOAD,
        },
    ),
    _JSON,
)
SUBMISSIONS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "people": st.one_of(st.lists(_PERSON, max_size=3), _JSON),
            "script": st.one_of(SCRIPTS, _JSON),
            "steps": st.one_of(st.integers(-2, 100), _JSON),
            "duration": st.one_of(st.floats(), _JSON),
            "seed": st.one_of(st.integers(), _JSON),
        },
    ),
    _JSON,
)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("examples", SIZES)
def test_web_submissions(runner, examples: int) -> None:
    def check(payload: Any) -> None:
        before = _files(runner.work)
        try:
            job = runner.submit(payload)
        except RequestError as e:
            _refused(e)
            assert _files(runner.work) == before, "a refused submission left files behind"
            return
        made = _files(runner.work) - before
        assert all(runner.work / "jobs" / job.id in p.parents for p in made)  # only its own job folder

    run(SUBMISSIONS, check, examples)
    outside = [p for p in _files(runner.work) if "jobs" not in p.relative_to(runner.work).parts]
    assert not outside
