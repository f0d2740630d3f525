"""Configs: strict keys, one-line errors naming the key, YAML loading and --set overrides."""

from __future__ import annotations

import pytest
from pydantic import Field

from salbench.config import Config, ConfigError


class Model(Config):
    arch: str = "vgg16"
    width: float = Field(1.0, gt=0, le=1)


class Study(Config):
    seed: int = 0
    model: Model = Model()
    methods: list[str] = Field(default_factory=lambda: ["saliency"])


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"^Study: unknown key 'model.depth'$"):
        Study.parse({"model": {"depth": 3}})


def test_wrong_type_and_out_of_range_name_key_and_allowed_range():
    with pytest.raises(ConfigError, match=r"seed = 'x'.*integer"):
        Study.parse({"seed": "x"})
    with pytest.raises(ConfigError, match=r"model.width = 2.*less than or equal to 1"):
        Study.parse({"model": {"width": 2}})


def test_errors_are_one_line():
    with pytest.raises(ConfigError) as err:
        Study.parse({"seed": "x", "model": {"width": -1}})
    assert "\n" not in str(err.value)


def test_overrides_are_parsed_as_yaml_and_validated():
    cfg = Study().with_overrides(["seed=3", "model.width=0.25", "methods=[a, b]"])
    assert (cfg.seed, cfg.model.width, cfg.methods) == (3, 0.25, ["a", "b"])
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        Study().with_overrides(["sed=3"])
    with pytest.raises(ConfigError, match="key=value"):
        Study().with_overrides(["seed"])
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        Study().with_overrides(["seed.x=1"])


def test_yaml_round_trip(tmp_path):
    cfg = Study(seed=5, model=Model(width=0.5))
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert Study.from_yaml(path) == cfg
    path.write_text("seed: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Study.from_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        Study.from_yaml(tmp_path / "missing.yaml")
