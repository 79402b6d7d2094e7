"""Error groups (SPEC §3.6): fingerprints on the write side, groups on the read side."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from catalog.services import product_create
from retail import selectors
from retail.models import Metric, MetricRollup
from retailctl.core import tables as t
from retailctl.core.error_groups import error_groups

# The read model opens its own connection: the rows must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)


def _groups(days: int = 1):
    with selectors.read_model() as conn:
        return error_groups(conn, days=days)[1]


def _response_lines(request_id: str) -> list[dict]:
    lines = (settings.RETAIL_LOG_DIR / "application.log").read_text("utf-8").splitlines()
    return [
        record
        for record in map(json.loads, lines)
        if record.get("request_id") == request_id and record.get("event") == "http.response"
    ]


def test_n_requests_raising_the_same_exception_form_one_group_of_n(client, monkeypatch):
    """One exception type at one frame of project code: one group, its count, a sample."""
    product = product_create(sku="ERR-1", name="Err", price=Decimal("1.00"), stock=1)
    monkeypatch.setattr("catalog.apis.product_get", lambda **kw: int("not a number"))
    client.raise_request_exception = False
    for n in range(4):
        response = client.get(f"/api/products/{product.pk}/", headers={"X-Request-ID": f"x-{n}"})
        assert response.status_code == 500
    [group] = _groups()
    assert group.count == 4 and group.status_code == 500
    assert group.exception == "ValueError at catalog/apis.py:ProductDetailApi.get"
    assert group.error == "internal_error" and group.route == "api/products/<int:product_id>/"
    assert group.sample_request_id == "x-3"
    [line] = _response_lines("x-3")
    assert line["fingerprint"] == group.fingerprint and "ValueError" in line["exc_info"]


def test_404s_on_different_ids_form_one_group_by_route_template(client):
    """Three 404s on three product ids: one group of 3, named by the route, never the path."""
    for product_id in (9001, 9002, 9003):
        client.get(f"/api/products/{product_id}/")
    [group] = _groups()
    assert (group.count, group.status_code, group.error) == (3, 404, "not_found")
    assert group.route == "api/products/<int:product_id>/" and group.exception is None


def test_distinct_unmatched_paths_form_one_group_and_one_rollup_key(client):
    """50 paths no URL pattern matches: one `<unmatched>` group, one rollup key per type."""
    for n in range(50):
        client.get(f"/no/such/page-{n}/\x1b[31m")
    [group] = _groups()
    assert (group.count, group.route) == (50, "<unmatched>")
    routes = set(MetricRollup.objects.values_list("metric_type", "route"))
    assert routes == {("avg_response_time", "<unmatched>"), ("error_rate", "<unmatched>")}


def test_prune_lowers_group_counts_exactly(client):
    """Rows deleted by prune leave the group's count lower by exactly that many."""
    for product_id in (9001, 9002, 9003, 9004):
        client.get(f"/api/products/{product_id}/")
    client.get("/no/such/page/")
    oldest = list(
        Metric.objects.filter(metric_type="error_rate", metadata__route__startswith="api/")
        .order_by("id")
        .values_list("id", flat=True)[:3]
    )
    Metric.objects.filter(pk__in=oldest).update(recorded_at=datetime.now(UTC) - timedelta(days=100))
    from retail.selectors import _engine
    from retailctl.core.prune import metrics_prune

    assert metrics_prune(_engine(), older_than_days=90).deleted == 3
    counts = {group.route: group.count for group in _groups(days=7)}
    assert counts == {"api/products/<int:product_id>/": 1, "<unmatched>": 1}


def test_rows_inserted_by_other_tools_without_a_fingerprint_are_grouped_by_route(client):
    """A plain error_rate row from another tool counts in the group of its route and status."""
    client.get("/api/products/9001/")
    with selectors.read_model() as conn:
        conn.execute(
            t.metric.insert().values(
                metric_type="error_rate",
                value=1,
                metadata={"route": "legacy/", "status_code": 502},
                recorded_at=datetime.now(UTC),
            )
        )
        conn.commit()
        groups = {g.route: g for g in error_groups(conn, days=1)[1]}
    assert groups["legacy/"].count == 1 and groups["legacy/"].fingerprint == "legacy/ 502"
    assert groups["api/products/<int:product_id>/"].count == 1
