"""The `retailctl` command-line application: option parsing and rendering only.

Every command imports SQLAlchemy, Rich and the core inside its body, so `--help` starts fast.
"""

import typer

from retailctl.cli.alert import alert
from retailctl.cli.anomalies import anomalies
from retailctl.cli.errors import errors
from retailctl.cli.metrics import metrics
from retailctl.cli.prune import prune
from retailctl.cli.scenarios import scenarios
from retailctl.cli.tail import tail
from retailctl.cli.trace import trace

app = typer.Typer(
    name="retailctl",
    help="Operators' toolkit over the retail backend's database and logs.",
    no_args_is_help=True,
    # A database URL can hold a password: never print locals in a traceback.
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.command()(metrics)
app.command()(trace)
app.command()(tail)
app.command()(scenarios)
app.command()(prune)
app.command()(errors)
app.command()(alert)
app.command()(anomalies)


def main() -> None:
    """Run the CLI."""
    app()
