"""`retailctl prune`: delete metric rows older than N days, in bounded batches."""

from typing import Annotated

import typer

from retailctl.cli.options import DatabaseUrl, Json
from retailctl.cli.render import handled_errors, print_json


def prune(
    older_than_days: Annotated[
        int, typer.Option("--older-than-days", min=0, help="Delete rows older than N days.")
    ] = 90,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; delete nothing.")] = False,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=100_000, help="Rows per delete transaction."),
    ] = 5000,
    json: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete metrics older than N days in batches, each its own short transaction."""
    with handled_errors():
        from retailctl.cli.render import progress_bar
        from retailctl.core.db import engine_create
        from retailctl.core.prune import metrics_prune

        engine = engine_create(database_url)
        with progress_bar("pruning metrics", enabled=not dry_run) as update:
            result = metrics_prune(
                engine,
                older_than_days=older_than_days,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=update,
            )
        engine.dispose()
    if json:
        print_json(result.to_document())
    elif dry_run:
        typer.echo(
            f"Would delete {result.matched:,} metric row(s) recorded before "
            f"{result.cutoff.isoformat()} (older than {_days(older_than_days)}). Dry run."
        )
    else:
        typer.echo(
            f"Deleted {result.deleted:,} metric row(s) recorded before "
            f"{result.cutoff.isoformat()} (older than {_days(older_than_days)}) "
            f"in {result.batches} batch(es) of at most {batch_size:,}."
        )


def _days(count: int) -> str:
    return f"{count:,} day" if count == 1 else f"{count:,} days"
