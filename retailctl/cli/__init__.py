"""The `retailctl` command-line application."""

import typer

app = typer.Typer(
    name="retailctl",
    help="Operators' toolkit over the retail backend's database and logs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.command()
def metrics() -> None:
    """Show the KPI table for the last N days."""


@app.command()
def trace() -> None:
    """Show every log record of one request, oldest first."""


@app.command()
def tail() -> None:
    """Show the last N log records, optionally following."""


@app.command()
def scenarios() -> None:
    """Give the verdicts of quality scenarios A1 and A2."""


@app.command()
def prune() -> None:
    """Delete metrics older than N days, in batches."""


def main() -> None:
    """Run the CLI."""
    app()
