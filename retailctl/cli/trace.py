"""`retailctl trace REQUEST_ID`: every log record of one request, oldest first."""

from typing import Annotated

import typer

from retailctl.cli.options import DatabaseUrl, Json, LogDir
from retailctl.cli.render import console, handled_errors, print_raw_line, warn

# Searching more than this shows a progress bar (on a terminal only).
_PROGRESS_BYTES = 64 * 1024 * 1024
_PROGRESS_FILES = 10


def trace(
    request_id: Annotated[str, typer.Argument(help="The X-Request-ID of the request.")],
    json: Json = False,
    log_dir: LogDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show every log record of one request across application.log* as a timeline."""
    with handled_errors():
        from retailctl.cli.render import progress_bar
        from retailctl.core.logs import (
            file_size,
            log_dir_resolve,
            log_files,
            request_id_validate,
            trace_require,
        )

        request_id_validate(request_id)
        directory = log_dir_resolve(log_dir)
        files = log_files(directory)
        size = sum(map(file_size, files))
        many = size > _PROGRESS_BYTES or len(files) > _PROGRESS_FILES
        with progress_bar("searching logs", enabled=many) as update:
            result = trace_require(directory, request_id, progress=update)
    for message in result.warnings:
        warn(message)
    if result.skipped_lines:
        warn(f"skipped {result.skipped_lines} malformed line(s) holding the ID")
    if json:
        for record in result.records:
            print_raw_line(record.raw)
        return
    _render(request_id, result)


def _render(request_id: str, result) -> None:
    from rich.table import Table

    from retailctl.cli.render import plain, record_details, record_summary

    out = console()
    first = result.records[0].timestamp
    table = Table(
        title=f"Request {request_id}: {len(result.records)} record(s) "
        f"in {result.files_searched} file(s)",
        title_justify="left",
    )
    for name in ("time (UTC)", "+ms", "level", "logger", "event / message", "details"):
        table.add_column(name, justify="right" if name == "+ms" else "left")
    for record in result.records:
        stamp = record.timestamp
        offset = f"{(stamp - first).total_seconds() * 1000:,.1f}" if stamp and first else "?"
        table.add_row(
            stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if stamp else "?",
            offset,
            plain(record.level),
            plain(record.data.get("logger", "")),
            plain(record_summary(record.data)),
            plain(record_details(record.data)),
        )
    out.print(table)
