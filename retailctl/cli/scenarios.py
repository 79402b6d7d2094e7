"""`retailctl scenarios`: verdicts of quality scenarios A1 and A2 (exit 1 on FAIL)."""

import typer

from retailctl.cli.options import DatabaseUrl, Days, Json
from retailctl.cli.render import console, handled_errors, print_json

_TITLES = {
    "A1": "A1 flash-sale concurrency: no oversell, stock never negative",
    "A2": "A2 payment resilience: success >= 95 %, fast-fail p99 < 100 ms",
}
_STYLE = {"PASS": "bold green", "FAIL": "bold red"}


def scenarios(days: Days = 7, json: Json = False, database_url: DatabaseUrl = None) -> None:
    """Verify quality scenarios A1 and A2 over the last N days; exit 1 if any FAILs."""
    with handled_errors():
        from retailctl.core.db import engine_create
        from retailctl.core.scenarios import scenarios_failed, scenarios_verify

        engine = engine_create(database_url)
        with engine.connect() as conn:
            document = scenarios_verify(conn, days=days)
        engine.dispose()
    if json:
        print_json(document)
    else:
        _render(document)
    if scenarios_failed(document):
        raise typer.Exit(1)


def _render(document: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    table = Table(title="Quality scenarios", title_justify="left", show_lines=True)
    table.add_column("scenario")
    table.add_column("verdict")
    table.add_column("evidence")
    for name, result in document.items():
        evidence = "\n".join(
            f"{key} = {'n/a' if value is None else value}"
            for key, value in result.items()
            if key not in ("status", "no_data")
        )
        status = result["status"]
        verdict = Text(status, style=_STYLE.get(status, ""))
        if result.get("no_data"):
            verdict.append(" (no data)", style="yellow")
        table.add_row(_TITLES.get(name, name), verdict, evidence)
    out.print(table)
