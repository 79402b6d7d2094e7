"""`retailctl anomalies`: the hours that stood out from their seasonal band."""

from retailctl.cli.options import DatabaseUrl, Days, Json
from retailctl.cli.render import console, handled_errors, print_json


def anomalies(days: Days = 1, json: Json = False, database_url: DatabaseUrl = None) -> None:
    """List the hours of the last N days that stood out from their seasonal band."""
    with handled_errors():
        from datetime import UTC, datetime

        from retailctl.core.anomalies import anomalies_find
        from retailctl.core.db import engine_create

        now = datetime.now(UTC)
        engine = engine_create(database_url)
        try:
            with engine.connect() as conn:
                found = anomalies_find(conn, days=days, now=now)
        finally:
            engine.dispose()
    if json:
        print_json(
            {
                "days": days,
                "evaluated_at": now.isoformat(),
                "anomalies": [verdict.to_document() for verdict in found],
            }
        )
        return
    _render(found, days)


def _render(found, days: int) -> None:
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]Anomalies[/bold] in the complete hours of the last {days} day(s): {len(found)}"
    )
    if not found:
        out.print("No hour stood out from its seasonal band.")
        return
    table = Table(show_header=True)
    for name in ("hour (UTC)", "series", "observed", "expected", "band", "score", "baseline"):
        table.add_column(name, justify="left" if name in ("hour (UTC)", "series") else "right")
    for verdict in found:
        table.add_row(
            f"{verdict.hour:%Y-%m-%d %H:00}",
            verdict.series,
            f"{verdict.observed:,.4g}",
            f"{verdict.expected:,.4g}",
            f"{verdict.low:,.4g} – {verdict.high:,.4g}",
            f"{verdict.score:+.1f}",
            f"{verdict.basis} ({verdict.references})",
        )
    out.print(table)
