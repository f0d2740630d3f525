"""The command reference (docs/cli.md) is generated from the commands and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_matches_the_commands(tmp_path):
    out = tmp_path / "cli.md"
    typer = Path(sys.executable).with_name("typer")
    subprocess.run([str(typer), "salbench.cli", "utils", "docs", "--name", "salbench",
                    "--output", str(out)], check=True, capture_output=True, timeout=600)
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), (
        "docs/cli.md is stale: run `make docs`")


def test_readme_links_every_doc_page():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
    missing = [p for p in pages if p not in readme]
    assert not missing, f"README.md does not link {missing}"
