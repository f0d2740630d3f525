"""Studies: a validated config, a grid of jobs in stages, findings and a report section.

A study run lives in a run folder::

    <run>/config.yaml   the resolved config (preset + overrides), written before any job runs
    <run>/run.json      the study's name and the scale (preset) the config came from
    <run>/data/ models/ results/ report/ logs/

Stages run in order (e.g. train, then explain and score); within a stage, jobs are independent
and run by the chosen executor. Rerunning the same config in the same folder skips finished jobs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from salbench.config import Config, ConfigError
from salbench.report import Section, Table
from salbench.results import ResultStore, query
from salbench.results.findings import Finding, findings_frame, verdict_counts
from salbench.runtime import Job
from salbench.studies.executors import Summary, make_executor

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
    """A source document's experiment: config class, presets, job stages, the findings (one per
    claim of the document: ``findings(run_dir, scale) -> list[Finding]``) and a report section."""

    name: str
    summary: str
    config_class: type[Config]
    presets: dict[str, dict]
    stages: Callable[[Config], list[Stage]]
    report_section: Callable[[Path], object] | None = None
    findings: Callable[[Path, str], list[Finding]] | None = None

    def config(self, preset: str = "tiny", overrides: Sequence[str] = ()) -> Config:
        if preset not in self.presets:
            raise ConfigError(f"--preset must be one of {sorted(self.presets)}, got {preset!r}")
        return self.config_class.parse(self.presets[preset]).with_overrides(overrides)


_REGISTRY: dict[str, Study] = {}


def register(study: Study) -> Study:
    _REGISTRY[study.name] = study
    return study


def get_study(name: str) -> Study:
    """The registered study ``name`` (importing ``salbench.studies`` registers every study)."""
    if name not in _REGISTRY:
        raise ConfigError(f"study must be one of {sorted(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name]


def all_studies() -> dict[str, Study]:
    return dict(_REGISTRY)


def prepare_run_dir(run_dir: Path, config: Config, study: str = "", scale: str = "custom"
                    ) -> Path:
    """Create the run folder and write ``config.yaml`` (and ``run.json``: study, scale); refuse a
    folder holding another config."""
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
    info = run_dir / "run.json"
    if study and not info.is_file():
        tmp = run_dir / ".run.json.tmp"
        tmp.write_text(json.dumps({"study": study, "scale": scale}) + "\n")
        os.replace(tmp, info)
    return run_dir


def run_scale(run_dir: Path) -> str:
    """The preset a run was made from (``run.json``), or ``custom``."""
    info = Path(run_dir) / "run.json"
    return json.loads(info.read_text()).get("scale", "custom") if info.is_file() else "custom"


def attach_log(run_dir: Path) -> logging.Handler:
    """Send salbench's log records to ``<run>/logs/salbench.log`` (returns the handler to
    remove)."""
    handler = logging.FileHandler(Path(run_dir) / "logs" / "salbench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("salbench")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def run_study(study: Study, config: Config, run_dir: Path, executor: str = "local",
              device: str = "auto", scale: str = "custom") -> dict[str, Summary]:
    """Run every stage of ``study`` with ``config`` into ``run_dir``; return each stage's summary.
    ``scale``: the preset the config came from (recorded in ``run.json`` for the findings).

    The run's writer lock is held throughout: a second run into the same folder is refused
    (:class:`salbench.results.RunLockedError`) while this one is alive."""
    run_dir = prepare_run_dir(run_dir, config, study.name, scale)
    handler = attach_log(run_dir)
    log = logging.getLogger("salbench.studies")
    try:
        runner = make_executor(executor, device)
        summaries = {}
        with ResultStore(run_dir).lock():
            for stage in study.stages(config):
                start = time.perf_counter()
                summary = runner.run(stage.expand(run_dir), run_dir,
                                     description=f"{study.name}: {stage.name}")
                summary.seconds = time.perf_counter() - start
                log.info("stage %s: %d done, %d skipped, %d failed in %.1f s", stage.name,
                         len(summary.done), len(summary.skipped), len(summary.failed),
                         summary.seconds)
                summaries[stage.name] = summary
                if summary.failed:
                    break  # later stages depend on this one's outputs
        return summaries
    finally:
        logging.getLogger("salbench").removeHandler(handler)
        handler.close()


def studies_in(run_dir: Path) -> list[str]:
    """Names of the registered studies with rows (any table) or gallery items in the run."""
    from salbench.report.gallery import gallery_files

    tables = ("results", "summaries", "predictions", "curves")
    names = set(query(run_dir, " union ".join(f"select distinct study from {t}"
                                               for t in tables)).study)
    names |= set(gallery_files(run_dir))
    return sorted(n for n in names if n in all_studies())


def run_findings(run_dir: Path) -> list[Finding]:
    """Every finding of every study in the run, in study order then the document's order."""
    scale = run_scale(run_dir)
    out: list[Finding] = []
    for name in studies_in(run_dir):
        study = all_studies()[name]
        if study.findings is not None:
            out += study.findings(Path(run_dir), scale)
    return out


def findings_table(findings: list[Finding]) -> Table:
    """The findings of one study as the table that opens its report section."""
    frame = findings_frame(findings).drop(columns=["study", "scale"])
    bold = frame.assign(**dict.fromkeys(frame.columns, False))
    bold["verdict"] = frame["verdict"].isin(["agrees", "disagrees"])
    counts = verdict_counts(findings)
    scale = findings[0].scale if findings else "custom"
    caption = (f"Findings at the {scale} scale, computed from this run's results: "
               + ", ".join(f"{n} {v}" for v, n in counts.items())
               + ". measured [low, high]: the value and its 95 % bootstrap interval over n; "
                 "the verdict compares the interval with the document's claim.")
    return Table(frame, caption, name="findings", digits=3, bold=bold, collapse_after=100)


def report_sections(run_dir: Path, *, strict: bool = False) -> tuple[list[Section],
                                                                      dict[str, str]]:
    """The report sections of every registered study with rows or gallery items in the run, each
    opened by its findings table, and ``{study: message}`` for those whose section failed
    (``strict``: raise instead)."""
    scale = run_scale(run_dir)
    sections, errors = [], {}
    for name in studies_in(run_dir):
        study = all_studies()[name]
        if study.report_section is None:
            continue
        try:
            value = study.report_section(Path(run_dir))
            parts = value if isinstance(value, list) else [value]
            if study.findings is not None and parts:
                parts[0].lead_tables.insert(0, findings_table(study.findings(Path(run_dir),
                                                                             scale)))
        except Exception as err:
            if strict:
                raise
            logging.getLogger("salbench.studies").exception("study %s: report section failed",
                                                            name)
            errors[name] = f"{type(err).__name__}: {err}\n\n{traceback.format_exc(limit=6)}"
            continue
        sections += parts
    return sections, errors
