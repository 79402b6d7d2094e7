"""Every retailctl command has help text and the README's CLI reference is current."""

from pathlib import Path

import pytest
import typer.main

from retailctl.cli import app
from retailctl.cli.reference import readme_section, reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
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


def test_readme_reference_is_generated_from_help():
    """The README reference equals the current --help (regenerate with --write README.md)."""
    assert readme_section(README.read_text()) == reference_markdown().strip("\n")
