"""Delete old metric rows in small batches, each its own short transaction.

Each batch also adds what it deleted to `retail_metric_pruned` (keyed by metric type,
status class and value bucket), in the same transaction: the rollup forgets pruned rows,
the lifetime totals behind the Prometheus counters do not.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from retailctl.core import tables as t
from retailctl.core.errors import UsageError
from retailctl.core.sketch import HUGE_BUCKET, LN_GAMMA, ZERO_BUCKET

DEFAULT_BATCH_SIZE = 5000
# Keys per upsert statement: well under SQLite's 32766 bound parameters.
_UPSERT_CHUNK = 1000

# The rollup trigger's status class and bucket (retail migration 0002), so a row leaves the
# rollup and enters the pruned totals under the same key whatever its metadata holds.
_BUCKET_SQL = (
    f"CASE WHEN value > 1e-6 AND value < 1e15 THEN CAST(ceil(ln(value) / {LN_GAMMA!r}) AS INTEGER)"
    f" WHEN value >= 1e15 THEN {HUGE_BUCKET} ELSE {ZERO_BUCKET} END"
)
_STATUS_CLASS_SQL = {
    "postgresql": "coalesce(left(metadata ->> 'status_code', 1) || 'xx', '')",
    "sqlite": "coalesce(CASE WHEN json_valid(metadata) THEN substr(CAST("
    "json_extract(metadata, '$.status_code') AS TEXT), 1, 1) || 'xx' END, '')",
}
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class PruneResult:
    """What one prune run matched and deleted."""

    older_than_days: int
    cutoff: datetime
    dry_run: bool
    matched: int
    deleted: int
    batches: int

    def to_document(self) -> dict:
        return {
            "older_than_days": self.older_than_days,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "matched": self.matched,
            "deleted": self.deleted,
            "batches": self.batches,
        }


def prune_cutoff(*, older_than_days: int, now: datetime | None = None) -> datetime:
    """Return the cut-off instant, to the whole second: rows strictly before it go."""
    if older_than_days < 0:
        raise UsageError("--older-than-days must be >= 0")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return (now - timedelta(days=older_than_days)).replace(microsecond=0)


def metrics_prune(
    engine: Engine,
    *,
    older_than_days: int,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PruneResult:
    """Delete `retail_metric` rows recorded before the cut-off, `batch_size` rows at a time."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    cutoff = prune_cutoff(older_than_days=older_than_days, now=now)
    m, r = t.metric, t.metric_rollup
    old = m.c.recorded_at < cutoff
    with engine.connect() as conn:
        matched = int(conn.execute(select(func.count()).where(old)).scalar_one())
    deleted = batches = 0
    if not dry_run:
        while True:
            # One short transaction per batch: a running backend waits at most one batch.
            with engine.begin() as conn:
                count = _batch_delete(conn, select(m.c.id).where(old).limit(batch_size))
            if count <= 0:
                break
            deleted += count
            batches += 1
            if progress is not None:
                progress(deleted, max(matched, deleted))
        # The delete triggers have already subtracted every row; drop the emptied keys.
        with engine.begin() as conn:
            conn.execute(delete(r).where(r.c.samples <= 0))
    return PruneResult(
        older_than_days=older_than_days,
        cutoff=cutoff,
        dry_run=dry_run,
        matched=matched,
        deleted=deleted,
        batches=batches,
    )


def _batch_delete(conn: Connection, ids) -> int:
    """Delete the rows `ids` selects and add them to the pruned totals; return how many went.

    DELETE … RETURNING reports exactly the rows this transaction removed: a concurrent
    prune that picked the same rows waits for the lock, then finds them gone, so no row
    is counted twice.
    """
    m = t.metric
    dialect = conn.dialect.name
    status_class = literal_column(_STATUS_CLASS_SQL[dialect])
    bucket = literal_column(_BUCKET_SQL)
    statement = (
        delete(m)
        .where(m.c.id.in_(ids.scalar_subquery()))
        .returning(m.c.metric_type, status_class, bucket, m.c.value)
    )
    gone = conn.execute(statement).all()
    _pruned_add(conn, _fold(gone))
    return len(gone)


def _fold(rows: Iterable[Sequence]) -> dict[tuple[str, str, int], tuple[int, float]]:
    totals: dict[tuple[str, str, int], tuple[int, float]] = {}
    for metric_type, status_class, bucket, value in rows:
        key = (metric_type, status_class, int(bucket))
        samples, value_sum = totals.get(key, (0, 0.0))
        totals[key] = (samples + 1, value_sum + value)
    return totals


def _pruned_add(conn: Connection, totals: dict[tuple[str, str, int], tuple[int, float]]) -> None:
    p = t.metric_pruned
    # Sorted keys: concurrent prunes on PostgreSQL take the row locks in one order.
    values = [
        {
            "metric_type": metric_type,
            "status_class": status_class,
            "bucket": bucket,
            "samples": samples,
            "value_sum": value_sum,
        }
        for (metric_type, status_class, bucket), (samples, value_sum) in sorted(totals.items())
    ]
    insert = _INSERT[conn.dialect.name]
    for start in range(0, len(values), _UPSERT_CHUNK):
        statement = insert(p).values(values[start : start + _UPSERT_CHUNK])
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[p.c.metric_type, p.c.status_class, p.c.bucket],
                set_={
                    "samples": p.c.samples + statement.excluded.samples,
                    "value_sum": p.c.value_sum + statement.excluded.value_sum,
                },
            )
        )
