"""`retailctl tail`: the last N log records, optionally following the file."""

import sys
from typing import Annotated

import typer

from retailctl.cli.options import Json, LogDir
from retailctl.cli.render import console, handled_errors, print_raw_line, warn


def tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="Records to show.")] = 20,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new records (follows rotation).")
    ] = False,
    level: Annotated[
        str | None,
        typer.Option("--level", help="Only records at this level or above (e.g. WARNING)."),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Only records of this request.")
    ] = None,
    json: Json = False,
    log_dir: LogDir = None,
) -> None:
    """Show the last N log records, optionally following application.log."""
    with handled_errors():
        from retailctl.core.logs import follow as follow_log
        from retailctl.core.logs import level_threshold, log_dir_resolve, tail_records

        level_threshold(level)
        directory = log_dir_resolve(log_dir)
        result = tail_records(directory, count=lines, level=level, request_id=request_id)
    for message in result.warnings:
        warn(message)
    out = console()
    for record in result.records:
        _emit(record, json, out)
    sys.stdout.flush()
    if not follow:
        return
    try:
        with handled_errors():
            for record in follow_log(directory, level=level, request_id=request_id):
                _emit(record, json, out)
                sys.stdout.flush()  # a reader at the other end of a pipe sees it now
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _emit(record, json: bool, out) -> None:
    from retailctl.cli.render import record_line

    if json:
        print_raw_line(record.raw)
    elif out.is_terminal:
        # The terminal wraps a long line itself (soft wrap): copied, it stays one line.
        out.print(record_line(record.data), soft_wrap=True)
    else:
        sys.stdout.write(record_line(record.data).plain + "\n")
