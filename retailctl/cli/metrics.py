"""`retailctl metrics`: the KPI table of the last N days."""

from retailctl.cli.options import DatabaseUrl, Days, Json
from retailctl.cli.render import console, handled_errors, print_json

_BAR = "█"
_BAR_WIDTH = 30


def metrics(days: Days = 7, json: Json = False, database_url: DatabaseUrl = None) -> None:
    """Show the KPI table, daily trend, slowest and erroring routes for the last N days."""
    with handled_errors():
        from retailctl.core.db import engine_create
        from retailctl.core.metrics import metrics_summary

        engine = engine_create(database_url)
        with engine.connect() as conn:
            report = metrics_summary(conn, days=days)
        engine.dispose()
    if json:
        print_json(report.to_document())
        return
    _render(report)


def _fmt(value, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}"
    return f"{value:,}{suffix}"


def _render(report) -> None:
    from rich.table import Table

    out = console()
    k = report.kpis
    window = report.window
    out.print(
        f"[bold]Metrics[/bold] for the last {window.days} day(s): "
        f"{window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC"
    )
    kpis = Table(title="KPIs", title_justify="left", show_header=True)
    kpis.add_column("KPI")
    kpis.add_column("value", justify="right")
    kpis.add_column("KPI")
    kpis.add_column("value", justify="right")
    rows = [
        ("orders", _fmt(k["orders_total"]), "orders/day", _fmt(k["orders_per_day"])),
        ("refunds", _fmt(k["refunds_total"]), "refunds/day", _fmt(k["refunds_per_day"])),
        ("requests", _fmt(k["requests_total"]), "errors", _fmt(k["errors_total"])),
        (
            "error rate",
            _fmt(k["error_rate"], " %"),
            "payment success",
            _fmt(k["payment_success_rate"], " %"),
        ),
        (
            "avg response",
            _fmt(k["avg_response_time_ms"], " ms"),
            "p95 response",
            _fmt(k["p95_response_time_ms"], " ms"),
        ),
        (
            "p99 response",
            _fmt(k["p99_response_time_ms"], " ms"),
            "breaker state",
            k["circuit_breaker_state"] or "n/a",
        ),
        (
            "stock conflicts",
            _fmt(k["stock_conflicts"]),
            "throttled",
            _fmt(k["throttled_requests"]),
        ),
    ]
    for row in rows:
        kpis.add_row(*row)
    out.print(kpis)
    trend = Table(title="Daily trend", title_justify="left")
    for name in ("date", "orders", "refunds", "requests", "errors"):
        trend.add_column(name, justify="left" if name == "date" else "right")
    trend.add_column("orders ▏")
    peak = max((day["orders"] for day in report.daily), default=0) or 1
    for day in report.daily:
        bar = _BAR * round(_BAR_WIDTH * day["orders"] / peak)
        trend.add_row(
            day["date"],
            _fmt(day["orders"]),
            _fmt(day["refunds"]),
            _fmt(day["requests"]),
            _fmt(day["errors"]),
            bar,
        )
    out.print(trend)
    _routes(out, "Slowest routes (p95)", report.slowest_routes)
    _routes(out, "Top error routes", report.error_routes)


def _routes(out, title: str, routes) -> None:
    from rich.table import Table

    from retailctl.cli.render import plain

    table = Table(title=title, title_justify="left")
    for name in ("route", "requests", "errors", "avg ms", "p95 ms"):
        table.add_column(name, justify="left" if name == "route" else "right")
    for route in routes:
        table.add_row(
            plain(route.route),
            _fmt(route.requests),
            _fmt(route.errors),
            _fmt(route.avg_ms),
            _fmt(route.p95_ms),
        )
    if not routes:
        table.add_row("(none)", "", "", "", "")
    out.print(table)
