"""The one entry point for recording metrics (SPEC §3.3)."""

import logging
from typing import Any

from django.db import DatabaseError

logger = logging.getLogger(__name__)

ORDERS_PER_DAY = "orders_per_day"
ERROR_RATE = "error_rate"
REFUNDS_PER_DAY = "refunds_per_day"
PAYMENT_SUCCESS_RATE = "payment_success_rate"
AVG_RESPONSE_TIME = "avg_response_time"
CIRCUIT_BREAKER_STATE = "circuit_breaker_state"
STOCK_CONFLICTS = "stock_conflicts"
THROTTLED_REQUESTS = "throttled_requests"

METRIC_TYPES = frozenset(
    {
        ORDERS_PER_DAY,
        ERROR_RATE,
        REFUNDS_PER_DAY,
        PAYMENT_SUCCESS_RATE,
        AVG_RESPONSE_TIME,
        CIRCUIT_BREAKER_STATE,
        STOCK_CONFLICTS,
        THROTTLED_REQUESTS,
    }
)


def record_metric(metric_type: str, value: float, metadata: dict[str, Any] | None = None) -> None:
    """Record one metric row; a failure is logged and never raised into the caller."""
    from retail.models import Metric

    try:
        Metric.objects.create(metric_type=metric_type, value=float(value), metadata=metadata or {})
    except DatabaseError:
        logger.exception("metric.record_failed", extra={"metric_type": metric_type})
