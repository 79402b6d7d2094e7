"""`retailctl trace REQUEST_ID`: every log record of one request, oldest first."""

from typing import Annotated

import typer

from retailctl.cli.options import Json, LogDir
from retailctl.cli.render import console, handled_errors, print_raw_line, warn

# Searching more than this shows a progress bar (on a terminal only).
_PROGRESS_BYTES = 64 * 1024 * 1024
_PROGRESS_FILES = 10
_UNBOUNDED = 1_000_000


def trace(
    request_id: Annotated[str, typer.Argument(help="The X-Request-ID of the request.")],
    json: Json = False,
    log_dir: LogDir = None,
) -> None:
    """Show every log record of one request, in every service's logs, as a timeline.

    Reads each *.log family of the log directory (application.log*, gateway.log*, rotated
    and .gz too) and interleaves their records by time.
    """
    with handled_errors():
        from retailctl.cli.render import progress_bar
        from retailctl.core.logs import (
            file_size,
            log_dir_resolve,
            request_id_validate,
            trace_log_files,
            trace_require,
        )

        request_id_validate(request_id)
        directory = log_dir_resolve(log_dir)
        files = trace_log_files(directory)
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
    """Print the records as a table when it fits the width, else one block per record."""
    from rich.measure import Measurement

    out = console()
    title = (
        f"Request {request_id}: {len(result.records)} record(s) in {result.files_searched} file(s)"
    )
    table = _table(title, result.records)
    # The width the table takes unconstrained, every cell on one line.
    natural = Measurement.get(out, out.options.update_width(_UNBOUNDED), table).maximum
    if natural <= out.width:
        out.print(table)
    else:
        _print_blocks(out, title, result.records)


def _table(title: str, records):
    from rich.table import Table
    from rich.text import Text

    from retailctl.cli.render import level_text
    from retailctl.core.traces import trace_rows

    table = Table(title=title, title_justify="left")
    columns = ("time (UTC)", "+ms", "service", "level", "logger", "event / message", "details")
    for name in columns:
        table.add_column(name, justify="right" if name == "+ms" else "left")
    for row in trace_rows(records):
        table.add_row(
            row.time,
            row.offset_ms,
            Text(row.service),
            level_text(row.level),
            Text(row.logger),
            Text(row.summary),
            Text(" ".join(row.fields)),
        )
    return table


def _print_blocks(out, title: str, records) -> None:
    """Print one block per record: a heading line, the event, then one field per line.

    A narrow terminal cuts a table's cells (`status_code=5…`); here every field has the
    whole width, and a value longer than a line goes on under its own indent.
    """
    from rich.text import Text

    from retailctl.cli.render import level_text
    from retailctl.core.traces import trace_rows

    out.print(Text(title), soft_wrap=True)
    for row in trace_rows(records):
        heading = Text(f"\n{row.time}  +{row.offset_ms} ms  {row.service}  ")
        heading.append_text(level_text(row.level))
        heading.append(f"  {row.logger}")
        out.print(heading, soft_wrap=True)
        summary = [(row.summary, 2)] * bool(row.summary)
        for text, indent in summary + [(field, 4) for field in row.fields]:
            width = max(out.width - indent, 20)
            for line in Text(text, overflow="fold").wrap(out, width):
                line.rstrip()
                out.print(Text(" " * indent) + line, soft_wrap=True)
