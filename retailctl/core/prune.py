"""Delete old metric rows in small batches, each its own short transaction."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from retailctl.core import tables as t
from retailctl.core.errors import UsageError

DEFAULT_BATCH_SIZE = 5000


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
                batch = select(m.c.id).where(old).limit(batch_size).scalar_subquery()
                count = conn.execute(delete(m).where(m.c.id.in_(batch))).rowcount
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
