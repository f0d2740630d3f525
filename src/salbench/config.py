"""Validated configuration: pydantic models read from YAML and ``key=value`` overrides.

Every config class subclasses :class:`Config`. Unknown keys, wrong types and out-of-range values
fail before any work starts with a one-line :class:`ConfigError` naming the key and what it allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import Self


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the offending key."""


class Config(BaseModel):
    """Base for every salbench config: strict keys, validated on construction and assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Validate ``data`` into this config, raising :class:`ConfigError` on the first problem."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping of keys to values, "
                              f"got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise ConfigError(describe_validation_error(cls.__name__, err)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Read and validate a YAML file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                              f"{str(err).splitlines()[0]}") from None
        return cls.parse(data)

    def with_overrides(self, assignments: Iterable[str]) -> Self:
        """A validated copy with ``dotted.key=value`` assignments applied (values parsed as
        YAML)."""
        data = self.model_dump()
        for assignment in assignments:
            key, value = parse_assignment(assignment)
            set_dotted(data, key, value)
        return type(self).parse(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """Split ``"a.b=3"`` into ``("a.b", 3)``; the value is read as a YAML scalar or list."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value (e.g. model.width=0.25), got {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Assign ``value`` at the dotted ``key`` of a nested dict; unknown keys are left to
    validation."""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {key}: {prefix!r} is not a section of the config")
        node = child
    node[parts[-1]] = value


def describe_validation_error(name: str, err: ValidationError) -> str:
    """One line: the first failing key (dotted), what was given and what is allowed."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{name}: unknown key {key!r}"
    given = first.get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) or len(repr(given)) < 60 else "…"
    return f"{name}: {key} = {shown}: {first['msg']}"
