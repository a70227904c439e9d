from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from facevox.config import ConfigError, from_dict, load, parse_overrides, to_dict, write_resolved


@dataclass(frozen=True, kw_only=True)
class Inner:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    path: Path | None = None
    inner: Inner = field(default_factory=Inner)


def test_layers_defaults_recipe_overrides(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"steps": 20, "inner": {"lr": 0.5}}))
    cfg = load(Outer, recipe, ["inner.lr=0.25", "flag=true", "path=/tmp/a"], name="given")
    assert cfg == Outer(name="given", steps=20, flag=True, path=Path("/tmp/a"), inner=Inner(lr=0.25))


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inner\.lrr"):
        load(Outer, None, ["inner.lrr=1"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="stepz"):
        load(Outer, recipe)


def test_type_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="steps"):
        load(Outer, None, ["steps=ten"])
    with pytest.raises(ConfigError, match="flag"):
        load(Outer, None, ["flag=maybe"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_tuple_override_and_round_trip(tmp_path: Path) -> None:
    cfg = load(Outer, None, ["inner.betas=[0.8, 0.95]"])
    assert cfg.inner.betas == (0.8, 0.95)
    path = write_resolved(cfg, tmp_path)
    again = from_dict(Outer, yaml.safe_load(path.read_text()))
    assert again == cfg
    assert to_dict(again)["inner"]["betas"] == [0.8, 0.95]


def test_missing_recipe() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(Outer, "/nonexistent/recipe.yaml")
