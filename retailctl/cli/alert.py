"""`retailctl alert`: evaluate alert rules, record their state, notify transitions (cron)."""

from pathlib import Path
from typing import Annotated

import typer

from retailctl.cli.options import DatabaseUrl, Json
from retailctl.cli.render import console, handled_errors, plain, print_json, warn

_STYLE = {"firing": "bold red", "resolved": "green"}
_MARK = {"firing": "FIRED", "resolved": "RESOLVED", "repeat": "REPEATED"}


def alert(
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            metavar="FILE",
            help="Rules file (TOML); default $RETAIL_ALERT_RULES, else the built-in rules.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate and show; record and notify nothing.")
    ] = False,
    json: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Evaluate alert rules, record their state and notify transitions; exit 1 if any fires."""
    with handled_errors():
        from retailctl.core.alerts import alert_run
        from retailctl.core.db import engine_create
        from retailctl.core.rules import rules_load

        rule_set = rules_load(rules)
        engine = engine_create(database_url)
        try:
            run = alert_run(engine, rule_set, dry_run=dry_run)
        finally:
            engine.dispose()
    for rule, notifier, error in run.failures():
        warn(f"notifier {notifier!r} failed for rule {rule!r}: {error} (retried next run)")
    if json:
        print_json(run.to_document())
    else:
        _render(run)
    if run.firing:
        raise typer.Exit(1)


def _render(run) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    mode = " (dry run: nothing recorded or sent)" if run.dry_run else ""
    out.print(
        f"[bold]Alerts[/bold] at {run.evaluated_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"{len(run.outcomes)} rule(s) from {run.source}{mode}: {len(run.firing)} firing"
    )
    table = Table(show_header=True)
    for name in ("rule", "severity", "state", "since", "value / summary", "notified"):
        table.add_column(name)
    for outcome in run.outcomes:
        state = Text(outcome.state, style=_STYLE.get(outcome.state, ""))
        since = outcome.since
        if outcome.pending_since and outcome.state != "firing":
            state, since = Text("pending", style="yellow"), outcome.pending_since
        if outcome.transition:
            state.append(f" ({_MARK[outcome.transition]})", style="bold")
        notified = ", ".join(outcome.delivery.delivered)
        if outcome.owed:
            notified = (notified + " " if notified else "") + f"owed: {', '.join(outcome.owed)}"
        table.add_row(
            plain(outcome.rule.name),
            outcome.rule.severity,
            state,
            f"{since:%Y-%m-%d %H:%M}",
            plain(outcome.condition.summary),
            plain(notified),
        )
    out.print(table)
