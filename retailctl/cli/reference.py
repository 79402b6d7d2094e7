"""Generate the README's CLI reference from the commands' own --help (run with --write)."""

import sys
from pathlib import Path

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"
_WIDTH = "100"


def reference_markdown() -> str:
    """Return the --help of retailctl and of every command as Markdown."""
    from typer.testing import CliRunner

    from retailctl.cli import app

    runner = CliRunner()
    parts = []
    for name in (
        "",
        "metrics",
        "trace",
        "tail",
        "scenarios",
        "prune",
        "errors",
        "alert",
        "anomalies",
    ):
        args = [name, "--help"] if name else ["--help"]
        result = runner.invoke(app, args, prog_name="retailctl", env={"COLUMNS": _WIDTH})
        title = f"retailctl {name}".strip()
        parts.append(f"### `{title}`\n\n```\n{result.stdout.rstrip()}\n```\n")
    return "\n".join(parts)


def readme_section(readme: str) -> str:
    """Return the reference part of the README text (between the markers)."""
    return readme.split(START, 1)[1].split(END, 1)[0].strip("\n")


def main() -> None:
    """Print the reference, or rewrite it in the README given after --write."""
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        text = path.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{START}\n{reference_markdown()}\n{END}{tail}")
    else:
        sys.stdout.write(reference_markdown())


if __name__ == "__main__":
    main()
