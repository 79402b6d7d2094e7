"""Rendering shared by the commands: consoles, errors, JSON, log records as plain text."""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from retailctl.core.traces import record_fields, record_summary

_WIDE = 10_000
# The colour of each level where colour is shown (a terminal without NO_COLOR).
LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "WARN": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}


def console(*, stderr: bool = False):
    """Return a Rich console; off a terminal it has no colour and no 80-column cropping.

    A terminal's console takes the terminal's width, and styles text unless NO_COLOR is
    set (no-color.org: then no escape sequence at all, bold included). Off a terminal the
    width is COLUMNS when set, else unbounded, so piped output is never cut.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        if os.environ.get("NO_COLOR"):
            return Console(file=stream, highlight=False, color_system=None)
        return Console(file=stream, highlight=False)
    return Console(
        file=stream,
        highlight=False,
        no_color=True,
        width=_columns() or _WIDE,
        soft_wrap=True,
        emoji=False,
    )


def _columns() -> int | None:
    raw = os.environ.get("COLUMNS", "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else None


def fail(message: str, code: int) -> NoReturn:
    """Print one clear line on stderr and exit with `code`."""
    typer.echo(f"retailctl: error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    typer.echo(f"retailctl: warning: {message}", err=True)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, never wrapped."""
    import orjson

    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def print_raw_line(line: bytes) -> None:
    """Print one log line exactly as it was written (it is valid UTF-8 JSON)."""
    sys.stdout.write(line.rstrip(b"\r").decode() + "\n")


@contextmanager
def handled_errors() -> Iterator[None]:
    """Turn core errors and database failures into SPEC's exit codes, without a traceback."""
    from retailctl.core.errors import RetailctlError

    try:
        yield
    except RetailctlError as exc:
        fail(str(exc), exc.exit_code)
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            from retailctl.core.db import database_error_message

            fail(database_error_message(exc), 3)
        raise


@contextmanager
def progress_bar(description: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """Yield an update(done, total) callback drawing a bar on stderr when it is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    with Progress(
        description,
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def plain(value: Any):
    """Return a Rich Text of a log value: never parsed as markup, control characters gone."""
    from rich.text import Text

    from retailctl.core.logs import clean_text

    return Text(clean_text(value))


def record_details(data: dict[str, Any]) -> str:
    """Return the salient fields of one record as `key=value` text on one line."""
    return " ".join(record_fields(data))


def record_line(data: dict[str, Any]):
    """Return one record as one line of Rich Text: time level logger request event details.

    Only the level is styled (its colour shows where the console shows colour).
    """
    from rich.text import Text

    line = Text(_shown(data, "timestamp") + " ")
    line.append_text(level_text(_shown(data, "level").upper()))
    rest = [_shown(data, "logger"), _shown(data, "request_id")]
    rest += [part for part in (record_summary(data), record_details(data)) if part]
    line.append(" " + " ".join(rest))
    return line


def level_text(level: str):
    """Return a level as Rich Text in its colour."""
    from rich.text import Text

    return Text(level, style=LEVEL_STYLES.get(level, ""))


def _shown(data: dict[str, Any], key: str) -> str:
    """Return a field as clean text, '-' when it is absent, null or empty."""
    from retailctl.core.logs import clean_text

    value = data.get(key)
    return "-" if value is None else clean_text(value) or "-"
