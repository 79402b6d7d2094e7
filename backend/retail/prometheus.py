"""/metrics/prometheus: the read model in Prometheus' text format, by its conventions (SPEC §4).

Counters are lifetime totals (retailctl.core.lifetime) that `retailctl prune` and a
restart never lower; latency is a histogram in seconds; ratios are gauges from 0 to 1.
Every worker answers the same numbers, since all come from the database. The names are
a contract: alert rules (deploy/prometheus/alerts.yml) are written against them.
"""

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from retail import selectors
from retailctl.core.lifetime import LifetimeTotals, lifetime_totals
from retailctl.core.metrics import MetricsReport, metrics_summary
from retailctl.core.scenarios import PASS, scenarios_verify
from retailctl.core.sketch import count_at_most

# Text format 0.0.4, which every Prometheus reads (the names need no UTF-8 escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# pybreaker's state names, as the breaker records them.
BREAKER_STATES = ("closed", "open", "half-open")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# The window `retailctl scenarios` judges by default.
SCENARIO_DAYS = 7
# Upper bounds of the latency histogram, in seconds (prometheus_client's defaults).
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Business counters: (name without _total, help, LifetimeTotals attribute).
_BUSINESS_COUNTERS = (
    ("retail_orders_paid", "Orders paid (status paid or refunded since).", "orders_paid"),
    ("retail_refunds", "Refunds made.", "refunds"),
)
# Counters of metric rows: (name without _total, help, metric_type).
_ROW_COUNTERS = (
    ("retail_http_errors", "HTTP 4xx/5xx answers recorded.", "error_rate"),
    ("retail_throttled_requests", "Checkout requests throttled.", "throttled_requests"),
    ("retail_stock_conflicts", "Oversell attempts stopped by the guard.", "stock_conflicts"),
    (
        "retail_payment_fast_fails",
        "Checkouts an open breaker turned away without calling the gateway.",
        "payment_fast_fail",
    ),
)


class ReadModelCollector:
    """Yield the metric families of one scrape from figures read beforehand."""

    def __init__(self, *, lifetime: LifetimeTotals, today: MetricsReport, scenarios: dict):
        self.lifetime = lifetime
        self.today = today
        self.scenarios = scenarios

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield self._latency()
        yield self._breaker()
        yield self._scenarios()
        yield from self._ratios()

    def _counters(self) -> Iterator[Metric]:
        lifetime = self.lifetime
        for name, text, attribute in _BUSINESS_COUNTERS:
            yield CounterMetricFamily(name, text, getattr(lifetime, attribute))
        requests = CounterMetricFamily(
            "retail_http_requests",
            "HTTP requests recorded, by status class (unknown: no status code in the row).",
            labels=["status_class"],
        )
        classes = dict.fromkeys(STATUS_CLASSES, 0) | lifetime.requests_by_status_class
        for status_class, count in sorted(classes.items()):
            requests.add_metric([status_class or "unknown"], count)
        yield requests
        for name, text, metric_type in _ROW_COUNTERS:
            yield CounterMetricFamily(name, text, lifetime.rows_by_type.get(metric_type, 0))

    def _latency(self) -> Metric:
        histogram = self.lifetime.latency_buckets
        buckets = [
            (floatToGoString(seconds), count_at_most(histogram, seconds * 1000))
            for seconds in LATENCY_BUCKETS_SECONDS
        ]
        buckets.append(("+Inf", sum(histogram.values())))
        return HistogramMetricFamily(
            "retail_http_request_duration_seconds",
            "Time from request to response in the middleware. A request counts under an upper"
            " bound only if it certainly took no longer (buckets of 1% relative width).",
            buckets=buckets,
            sum_value=self.lifetime.latency_sum_ms / 1000,
        )

    def _breaker(self) -> Metric:
        breaker = GaugeMetricFamily(
            "retail_circuit_breaker_state",
            "1 for the payment breaker's current state (its latest recorded change), else 0;"
            " all 0 while no change was recorded (state unknown).",
            labels=["state"],
        )
        current = (self.today.kpis["circuit_breaker_state"] or "").lower()
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1.0 if state == current else 0.0)
        return breaker

    def _scenarios(self) -> Metric:
        verdicts = GaugeMetricFamily(
            "retail_scenario_pass",
            f"1 when the quality scenario passes over the last {SCENARIO_DAYS} days"
            " (no data passes), 0 when it fails.",
            labels=["scenario"],
        )
        for name, result in sorted(self.scenarios.items()):
            verdicts.add_metric([name], 1.0 if result["status"] == PASS else 0.0)
        return verdicts

    def _ratios(self) -> Iterator[Metric]:
        kpis = self.today.kpis
        if kpis["payment_success_rate"] is not None:
            yield GaugeMetricFamily(
                "retail_payment_success_ratio",
                "Payment success rate today (UTC), as `retailctl metrics` reports it, from 0 to 1.",
                kpis["payment_success_rate"] / 100,
            )
        if kpis["requests_total"]:
            yield GaugeMetricFamily(
                "retail_http_error_ratio",
                "HTTP 4xx/5xx answers / requests recorded today (UTC).",
                kpis["errors_total"] / kpis["requests_total"],
            )


def prometheus_exposition() -> bytes:
    """Read the figures over one connection and render them in the text format."""
    with selectors.read_model() as conn:
        collector = ReadModelCollector(
            lifetime=lifetime_totals(conn),
            today=metrics_summary(conn, days=1),
            scenarios=scenarios_verify(conn, days=SCENARIO_DAYS),
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
