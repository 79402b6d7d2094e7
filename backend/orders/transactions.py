"""Writes that survive a lost database connection: retried on a fresh one.

A settle runs after the gateway answered: its connection may have been idle (and cut) for
the whole gateway call. Losing the answer to a dropped connection would leave a customer
charged for an order that stays pending, so such writes are retried.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A lost connection is retried this often, after these pauses (seconds): a PostgreSQL
# restart or failover, a terminated backend, a SQLite writer past its busy timeout.
_WRITE_PAUSES = (0.05, 0.25)


def write_durably(write: Callable[[], T]) -> T:
    """Run `write` (its own transaction) and, if the connection failed, again on a fresh one.

    Only for writes that are safe to repeat (conditional on the row's status): the first
    attempt may have committed before its connection was lost.
    """
    for pause in (*_WRITE_PAUSES, None):
        try:
            return write()
        except (OperationalError, InterfaceError):
            if pause is None or connection.in_atomic_block:
                raise
            logger.warning("db.retry", exc_info=True, extra={"event": "db.retry"})
            connection.close()
            time.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")
