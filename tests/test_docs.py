"""Every retailctl command has help text, a README mention and a current generated reference."""

import re
from pathlib import Path

import pytest
import typer.main

from retailctl.cli import app
from retailctl.cli.reference import REFERENCE_PATH, reference_document

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
COMMANDS = sorted(typer.main.get_command(app).commands)


def test_spec_commands_exist():
    """SPEC §4's commands are all there."""
    assert COMMANDS == [
        "alert", "anomalies", "errors", "metrics", "prune", "scenarios", "tail", "trace",
    ]  # fmt: skip


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_appears_in_the_readme(name):
    """A command without help text, or missing from the README, fails."""
    command = typer.main.get_command(app).commands[name]
    assert (command.help or "").strip()
    assert f"retailctl {name}" in README.read_text()


def test_cli_reference_is_generated_from_help():
    """docs/cli-reference.md equals the current --help (regenerate: reference --write)."""
    assert REFERENCE_PATH == PROJECT_ROOT / "docs" / "cli-reference.md"
    assert REFERENCE_PATH.read_text() == reference_document()


def test_readme_links_to_files_that_exist():
    """Every relative link of the README names a file or folder of the repository."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    relative = [target for target in targets if "://" not in target]
    assert "docs/cli-reference.md" in relative
    missing = [target for target in relative if not (PROJECT_ROOT / target).exists()]
    assert missing == []


def test_readme_stands_on_its_own():
    """The README cites no document the repository does not hold (the spec, the ADR)."""
    text = README.read_text()
    assert not re.search(r"SPEC\s*§|\bADR\b", text)
