"""Studies: a validated config, a grid of jobs in stages, and a report section.

A study run lives in a run folder::

    <run>/config.yaml   the resolved config (preset + overrides), written before any job runs
    <run>/data/ models/ results/ report/ logs/

Stages run in order (e.g. train, then explain and score); within a stage, jobs are independent
and run by the chosen executor. Rerunning the same config in the same folder skips finished jobs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from salbench.config import Config, ConfigError
from salbench.runtime import Job, Summary, make_executor

RUN_SUBFOLDERS = ("data", "models", "results", "report", "logs")
PRESETS = ("tiny", "small", "paper")
DEFAULT_RUNS_ROOT = Path("runs")


@dataclass(frozen=True)
class Stage:
    """A named list of independent jobs; stages of one study run in order.

    ``jobs`` is a list, or a function of the run folder that builds the list once the earlier
    stages have finished (e.g. explain only the models that training selected).
    """

    name: str
    jobs: Sequence[Job] | Callable[[Path], Sequence[Job]]

    def expand(self, run_dir: Path) -> Sequence[Job]:
        return self.jobs(run_dir) if callable(self.jobs) else self.jobs


@dataclass(frozen=True)
class Study:
    """A source document's experiment: config class, presets, job stages and a report section."""

    name: str
    summary: str
    config_class: type[Config]
    presets: dict[str, dict]
    stages: Callable[[Config], list[Stage]]
    report_section: Callable[[Path], object] | None = None

    def config(self, preset: str = "tiny", overrides: Sequence[str] = ()) -> Config:
        if preset not in self.presets:
            raise ConfigError(f"--preset must be one of {sorted(self.presets)}, got {preset!r}")
        return self.config_class.parse(self.presets[preset]).with_overrides(overrides)


_REGISTRY: dict[str, Study] = {}


def register(study: Study) -> Study:
    _REGISTRY[study.name] = study
    return study


def get_study(name: str) -> Study:
    from salbench import studies  # noqa: F401 - importing the package registers every study

    if name not in _REGISTRY:
        raise ConfigError(f"study must be one of {sorted(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name]


def all_studies() -> dict[str, Study]:
    from salbench import studies  # noqa: F401

    return dict(_REGISTRY)


def prepare_run_dir(run_dir: Path, config: Config) -> Path:
    """Create the run folder and write ``config.yaml``; refuse a folder holding another config."""
    run_dir = Path(run_dir)
    text = config.to_yaml()
    existing = run_dir / "config.yaml"
    if existing.is_file() and existing.read_text() != text:
        raise ConfigError(f"--out {str(run_dir)!r} already holds a run with a different config; "
                          "choose another --out or delete that folder")
    for sub in RUN_SUBFOLDERS:
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    if not existing.is_file():
        tmp = run_dir / ".config.yaml.tmp"
        tmp.write_text(text)
        os.replace(tmp, existing)
    return run_dir


def attach_log(run_dir: Path) -> logging.Handler:
    """Send salbench's log records to ``<run>/logs/salbench.log`` (returns the handler to remove)."""
    handler = logging.FileHandler(Path(run_dir) / "logs" / "salbench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("salbench")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def run_study(study: Study, config: Config, run_dir: Path, executor: str = "local",
              device: str = "auto") -> dict[str, Summary]:
    """Run every stage of ``study`` with ``config`` into ``run_dir``; return each stage's summary."""
    run_dir = prepare_run_dir(run_dir, config)
    handler = attach_log(run_dir)
    log = logging.getLogger("salbench.studies")
    try:
        runner = make_executor(executor, device)
        summaries = {}
        for stage in study.stages(config):
            summary = runner.run(stage.expand(run_dir), run_dir,
                                 description=f"{study.name}: {stage.name}")
            log.info("stage %s: %d done, %d skipped, %d failed", stage.name, len(summary.done),
                     len(summary.skipped), len(summary.failed))
            summaries[stage.name] = summary
            if summary.failed:
                break  # later stages depend on this one's outputs
        return summaries
    finally:
        logging.getLogger("salbench").removeHandler(handler)
        handler.close()
