"""What every ``salbench`` command shares: the one-line error exit and ``key=value`` parameters."""

from __future__ import annotations

from typing import NoReturn

import typer
import yaml
from rich.console import Console


def fail(message: str) -> NoReturn:
    """Print a one-line error to stderr and exit with status 2 (bad input)."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def warn(message: str) -> None:
    """Print a one-line warning to stderr."""
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {message}",
                                               highlight=False)


def parse_params(items: list[str], option: str = "--set") -> dict:
    """``key=value`` pairs, values parsed as YAML (``3`` -> int, ``[1, 2]`` -> list)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects key=value, got {item!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params
