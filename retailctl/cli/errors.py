"""`retailctl errors`: error groups of the last N days, the most frequent first (SPEC §3.6)."""

from retailctl.cli.options import DatabaseUrl, Days, Json
from retailctl.cli.render import console, handled_errors, plain, print_json


def errors(days: Days = 7, json: Json = False, database_url: DatabaseUrl = None) -> None:
    """List error groups: count, first and last seen, route, status, exception, a request ID.

    Feed the request ID to `retailctl trace` to read one occurrence's log lines.
    """
    with handled_errors():
        from retailctl.core.db import engine_create
        from retailctl.core.error_groups import error_groups_document

        engine = engine_create(database_url)
        with engine.connect() as conn:
            document = error_groups_document(conn, days=days)
        engine.dispose()
    if json:
        print_json(document)
        return
    _render(document)


def _render(document: dict) -> None:
    from rich.table import Table

    out = console()
    window = document["window"]
    groups = document["groups"]
    title = f"Error groups, last {window['days']} day(s): {len(groups)}"
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("count", "right"),
        ("first seen (UTC)", "left"),
        ("last seen (UTC)", "left"),
        ("route", "left"),
        ("status", "right"),
        ("error / exception", "left"),
        ("sample request ID", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for group in groups:
        table.add_row(
            f"{group['count']:,}",
            group["first_seen"][:19].replace("T", " "),
            group["last_seen"][:19].replace("T", " "),
            plain(group["route"] or "-"),
            str(group["status_code"] or "-"),
            plain(group["exception"] or group["error"] or "-"),
            plain(group["sample_request_id"] or "-"),
        )
    out.print(table)
    if groups:
        out.print("Read one: retailctl trace <sample request ID>")
